//! The `imagegate` verbs, one file each, and the flags they share (`args`).

pub mod args;
pub mod bench;
pub mod convert;
pub mod run;
pub mod test;
