#!/bin/bash

nc -zv localhost 8100 # 使用 net cat 確認 haproxy 的管理工具是否能通

if [ $? != "0" ]; then
        killall keepalived # 若失敗殺掉 keepalived 就會停止心跳包
fi
