//! The `[[vrrp_sync_group]]` sections: which instances fail over together, and the trackers
//! the group adds to each of them.

use std::collections::{HashMap, HashSet};

use super::*;

impl Validator<'_> {
    /// Resolves the groups, fills in each member's `sync_peers`, and adds the group's trackers
    /// to its members. As keepalived does, the weights of a member's trackers become 0 (a
    /// failure means FAULT, for the whole group) unless `sync_group_tracking_weight = true`:
    /// weighted trackers could leave half a group master on each host.
    pub(super) fn sync_groups(
        &mut self,
        raw: &[S<RawSyncGroup>],
        instances: &mut [VrrpInstance],
        known: &Known,
    ) -> Vec<SyncGroup> {
        let mut names = HashSet::new();
        let mut group_of: HashMap<String, usize> = HashMap::new();
        let mut groups = Vec::new();
        for (i, g) in raw.iter().enumerate() {
            let g = g.get_ref();
            let key = |field: &str| format!("vrrp_sync_group[{i}].{field}");
            let name = self.name(&g.name, &key("name"));
            self.unique(&mut names, &g.name, &key("name"), "vrrp_sync_group");
            let mut members: Vec<String> = Vec::new();
            for (j, member) in g.group.get_ref().iter().enumerate() {
                let member_key = key(&format!("group[{j}]"));
                let text = member.get_ref().trim().to_owned();
                if !instances.iter().any(|vi| vi.name == text) {
                    self.error(member.span(), &member_key, format!("names no vrrp_instance {text:?}"));
                    continue;
                }
                if let Some(other) = group_of.insert(text.clone(), i) {
                    let whose = if other == i { "this group".to_owned() } else { format!("vrrp_sync_group[{other}]") };
                    self.error(member.span(), &member_key, format!("{text:?} is already a member of {whose}"));
                    continue;
                }
                members.push(text);
            }
            if g.group.get_ref().len() < 2 {
                self.warn(g.group.span(), &key("group"), "a group of fewer than two instances synchronises nothing");
            }
            let track_script = self.tracks(&g.track_script, &key("track_script"), |name| known.script(name));
            let track_interface = self.tracks(&g.track_interface, &key("track_interface"), Known::interface);
            let track_process = self.tracks(&g.track_process, &key("track_process"), |name| known.process(name));
            let track_file = self.tracks(&g.track_file, &key("track_file"), |name| known.file(name));
            let keep_weights = g.sync_group_tracking_weight.unwrap_or(false);
            let weighted = instances.iter().filter(|vi| members.contains(&vi.name)).any(|vi| {
                vi.track_script
                    .iter()
                    .chain(&vi.track_interface)
                    .chain(&vi.track_process)
                    .chain(&vi.track_file)
                    .any(|t| t.weight != 0)
            }) || [&track_script, &track_interface, &track_process, &track_file]
                .iter()
                .any(|l| l.iter().any(|t| t.weight != 0));
            if weighted && !keep_weights {
                self.warn(
                    g.name.span(),
                    &key("name"),
                    "the weights of its members' trackers become 0, as in keepalived (a failure means FAULT for the whole \
                     group); set sync_group_tracking_weight = true to keep them",
                );
            }
            for vi in instances.iter_mut().filter(|vi| members.contains(&vi.name)) {
                vi.sync_peers = members.iter().filter(|m| **m != vi.name).cloned().collect();
                vi.track_script.extend(track_script.iter().cloned());
                vi.track_interface.extend(track_interface.iter().cloned());
                vi.track_process.extend(track_process.iter().cloned());
                vi.track_file.extend(track_file.iter().cloned());
                if !keep_weights {
                    for t in vi
                        .track_script
                        .iter_mut()
                        .chain(&mut vi.track_interface)
                        .chain(&mut vi.track_process)
                        .chain(&mut vi.track_file)
                        .chain(&mut vi.track_proxy)
                    {
                        t.weight = 0;
                    }
                }
            }
            let notify =
                self.notify([&g.notify, &g.notify_master, &g.notify_backup, &g.notify_fault, &g.notify_stop], &key("notify"));
            groups.push(SyncGroup { name, members, notify });
        }
        groups
    }
}
