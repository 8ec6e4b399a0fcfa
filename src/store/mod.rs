//! What minibox keeps on disk between commands: container records (`state`), and each
//! container's writable layer under the data root (`layers`).

pub mod idranges;
pub mod images;
pub mod layers;
pub mod load;
pub mod merged;
pub mod networks;
pub mod pull;
pub mod pull_guard;
pub mod state;
pub mod unpack;
pub mod volumes;
