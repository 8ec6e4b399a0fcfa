//! What minibox keeps on disk between commands: container records (`state`), and each
//! container's writable layer under the data root (`layers`).

pub mod layers;
pub mod networks;
pub mod state;
