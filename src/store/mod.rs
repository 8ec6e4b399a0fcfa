//! What minibox keeps on disk between commands: container records (`state`).

pub mod state;
