//! A server process a lab starts: killed and reaped when stopped or
//! dropped, so no test leaves a registry, Redis or Notary running.

use std::process::{Child, ExitStatus};

/// The running process, if any.
#[derive(Default)]
pub struct Daemon(Option<Child>);

impl Daemon {
    pub fn new(child: Child) -> Daemon {
        Daemon(Some(child))
    }

    /// Kills the process and waits for it (a no-op once stopped).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its process id while running (for CPU accounting in the load test).
    pub fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// How it ended, if it already has (e.g. it failed to start).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.0.as_mut()?.try_wait().ok().flatten()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
