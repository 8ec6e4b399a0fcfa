//! The container model: one checked description of a container (`spec`), reached through the
//! OCI runtime spec (`oci`), with what init sets up (`setup`), its network (`network`), who it
//! runs as (`user`), its volumes (`volume`), and what it is called (`names`). Front ends build
//! it; the runtime only reads it.

pub mod block_io;
pub mod names;
pub mod network;
pub mod oci;
pub mod process_attrs;
pub mod restart;
pub mod setup;
pub mod spec;
pub mod user;
pub mod userns;
pub mod volume;
