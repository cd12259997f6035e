//! The cluster a differential scenario runs on: a real Mesos master and agent or the embedded
//! cluster, behind the few questions a scenario asks of it.

use std::net::SocketAddr;

use shardex::local::LocalCluster;

use super::process_tree;
use super::real_mesos::RealMesos;

#[derive(Clone, Copy)]
pub enum Peer<'a> {
    Real(&'a RealMesos),
    Embedded(&'a LocalCluster),
}

impl Peer<'_> {
    pub fn master_url(&self) -> String {
        match self {
            Peer::Real(mesos) => mesos.master_url(),
            Peer::Embedded(cluster) => cluster.master_url(),
        }
    }

    pub fn agent_id(&self) -> String {
        match self {
            Peer::Real(mesos) => mesos.agent_id.clone(),
            Peer::Embedded(cluster) => cluster.agent_id().to_owned(),
        }
    }

    pub fn agent_addr(&self) -> SocketAddr {
        match self {
            Peer::Real(mesos) => mesos.agent_addr,
            Peer::Embedded(cluster) => cluster.agent_endpoint(),
        }
    }

    /// The process of `executor_id`'s container whose program's name starts with `program`.
    /// On both clusters the container's first process is `sh -c <command>` (dash does not
    /// exec the last command), the parent of the program.
    pub async fn executor_process(&self, executor_id: &str, program: &str) -> Option<i32> {
        match self {
            Peer::Real(mesos) => mesos.process_of_executor(executor_id, program),
            Peer::Embedded(cluster) => {
                let shell = cluster.executor_pid(executor_id).await.ok().flatten()?;
                process_tree(shell)
                    .into_iter()
                    .find(|pid| {
                        std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
                            exe.file_name()
                                .is_some_and(|n| n.to_string_lossy().starts_with(program))
                        })
                    })
                    .map(|pid| pid as i32)
            }
        }
    }
}
