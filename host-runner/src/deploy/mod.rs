//! Running imagegate without Kubewarden: the container image of `imagegate
//! serve` ([`image`]), the manifests that run it as an admission webhook
//! ([`webhook`]), kube-apiserver's ImagePolicyWebhook configuration
//! ([`imagepolicy`]), their certificates ([`certs`]) and the serve command
//! line they all use ([`serve_command`]).

pub mod certs;
pub mod image;
pub mod imagepolicy;
pub mod serve_command;
pub mod webhook;
