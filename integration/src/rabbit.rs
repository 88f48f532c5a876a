//! A three-node RabbitMQ cluster in a lab's backend namespace (`scripts/rabbitmq-cluster.sh`),
//! stopped with everything it wrote when dropped.

use std::path::Path;
use std::process::Command;

use crate::lab::Lab;
use crate::{repo_root, run_script_env};

pub struct Cluster {
    lab: String,
    /// The CA, certificate and key of a TLS listener on 5671 (`RABBIT_TLS_DIR`), if any.
    tls_dir: Option<String>,
}

impl Cluster {
    pub fn start(lab: &Lab) -> Cluster {
        Cluster::started(Cluster { lab: lab.name.clone(), tls_dir: None })
    }

    /// With AMQPS on 5671 from the files in `tls_dir` (ca.pem, server.pem, key.pem).
    pub fn start_with_tls(lab: &Lab, tls_dir: &Path) -> Cluster {
        let tls_dir = tls_dir.to_str().expect("a UTF-8 path").to_owned();
        Cluster::started(Cluster { lab: lab.name.clone(), tls_dir: Some(tls_dir) })
    }

    fn started(cluster: Cluster) -> Cluster {
        cluster.script(&["start"]);
        cluster
    }

    /// `stop-node N` or `start-node N`.
    pub fn node(&self, verb: &str, n: u8) {
        self.script(&[verb, &n.to_string()]);
    }

    /// `rabbitmqctl` on node N; its output.
    pub fn ctl(&self, n: u8, args: &[&str]) -> String {
        let n = n.to_string();
        let mut words = vec!["ctl", n.as_str()];
        words.extend_from_slice(args);
        self.script(&words)
    }

    fn script(&self, args: &[&str]) -> String {
        let mut env = vec![("LAB", self.lab.as_str())];
        if let Some(dir) = &self.tls_dir {
            env.push(("RABBIT_TLS_DIR", dir));
        }
        run_script_env("rabbitmq-cluster.sh", args, &env)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ =
            Command::new("bash").arg(repo_root().join("scripts/rabbitmq-cluster.sh")).arg("stop").env("LAB", &self.lab).status();
    }
}
