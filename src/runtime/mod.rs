//! The runtime: the parent side that makes and watches a container (`spawn`: its cgroup and first
//! process, step by step; `launcher`: what a docker-style run adds; `create`, `exec`;
//! `supervisor`, `signals`, `stdio`, `log`: the watch), and the child side (`init`) that sets
//! it up and becomes its program.

pub mod attach;
pub mod channel;
pub mod cp;
pub mod create;
pub mod exec;
pub mod explain;
pub mod explain_page;
pub mod hooks;
pub mod host_objects;
pub mod init;
pub mod launcher;
pub mod log;
pub mod network;
pub mod nft;
pub mod pid1;
pub mod ports;
pub mod sealed_self;
pub mod signals;
pub mod spawn;
pub mod status;
pub mod stdio;
pub mod supervisor;
pub mod terminal;
pub mod userns;
