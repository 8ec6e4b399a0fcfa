//! Exit statuses, docker's way: CMD's own status, 128+N for signal N, 125 when minibox itself
//! failed, 126 when CMD cannot be executed, 127 when CMD is not there.

use nix::sys::wait::WaitStatus;

/// minibox itself failed (bad input, a setup step).
pub const RUNTIME_FAILED: i32 = 125;
/// CMD exists but could not be executed.
pub const CANNOT_EXECUTE: i32 = 126;
/// CMD was not found in the container.
pub const NOT_FOUND: i32 = 127;

/// An error that ends minibox with a given status (anything else ends it with 125).
#[derive(Debug)]
pub struct StatusError {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StatusError {}

/// The status the error asks minibox to exit with.
pub fn code_of(err: &anyhow::Error) -> i32 {
    err.downcast_ref::<StatusError>()
        .map_or(RUNTIME_FAILED, |e| e.code)
}

/// The shell's convention for how a process ended: its exit code, or 128 + the signal.
pub fn from_wait(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn wait_statuses_map_like_a_shell() {
        let pid = Pid::from_raw(1);
        assert_eq!(from_wait(WaitStatus::Exited(pid, 3)), Some(3));
        assert_eq!(
            from_wait(WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            Some(137)
        );
        assert_eq!(from_wait(WaitStatus::StillAlive), None);
    }

    #[test]
    fn errors_carry_their_status() {
        let plain = anyhow::anyhow!("boom");
        assert_eq!(code_of(&plain), 125);
        let nf = anyhow::Error::new(StatusError {
            code: NOT_FOUND,
            message: "x".into(),
        });
        assert_eq!(code_of(&nf.context("while running")), 127);
    }
}
