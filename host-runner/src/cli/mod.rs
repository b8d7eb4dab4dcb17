//! The `imagegate` verbs, one file each named for its verb (`Args` and
//! `run`), and the flags they share ([`args`]). A verb file reads files and
//! flags and prints; what it does lives in the module of its concern.

pub mod annotate;
pub mod args;
pub mod artifacthub;
pub mod bench;
pub mod check;
pub mod convert;
pub mod image;
pub mod inspect;
pub mod pull;
pub mod push;
pub mod run;
pub mod scaffold;
pub mod scaffold_webhook;
pub mod serve;
pub mod test;
