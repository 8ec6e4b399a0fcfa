//! `--restart`: whether a container's supervisor starts it again when it ends, docker's
//! policies and words (`no`, `on-failure[:N]`, `always`, `unless-stopped`), and how long it
//! waits before each try (docker's backoff: 100 ms, doubling, at most a minute; back to 100 ms
//! after a run of 10 s or more).

use std::time::Duration;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Which containers come back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartName {
    /// Never (docker's default).
    #[default]
    No,
    /// When it exits with a status other than 0, at most `max_retries` times if given.
    OnFailure,
    /// Whenever it ends, until `stop` (or `kill` with its stop signal or KILL).
    Always,
    /// As `always`: minibox has no daemon whose restart could tell the two apart.
    UnlessStopped,
}

/// A container's restart policy, as `--restart` gave it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    pub name: RestartName,
    /// `on-failure:N`: the most restarts; `None`: no bound.
    #[serde(default)]
    pub max_retries: Option<u32>,
}

/// The first wait before a restart, and the longest.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run at least this long starts the backoff over.
pub const STEADY_RUN: Duration = Duration::from_secs(10);

impl RestartPolicy {
    /// Parses `--restart`'s value, as docker's does.
    pub fn parse(text: &str) -> Result<RestartPolicy> {
        let (word, count) = match text.split_once(':') {
            Some((w, c)) => (w, Some(c)),
            None => (text, None),
        };
        let name = match word {
            "no" | "" => RestartName::No,
            "on-failure" => RestartName::OnFailure,
            "always" => RestartName::Always,
            "unless-stopped" => RestartName::UnlessStopped,
            _ => bail!(
                "invalid --restart {text:?}: give no, on-failure[:MAX_RETRIES], always or \
                 unless-stopped"
            ),
        };
        let max_retries = match (name, count) {
            (_, None) => None,
            (RestartName::OnFailure, Some(c)) => match c.parse::<u32>() {
                Ok(n) => Some(n),
                Err(_) => bail!(
                    "invalid --restart {text:?}: the maximum retry count must be a \
                     non-negative number"
                ),
            },
            (_, Some(_)) => {
                bail!("invalid --restart {text:?}: only on-failure takes a maximum retry count")
            }
        };
        Ok(RestartPolicy { name, max_retries })
    }

    pub fn is_none(&self) -> bool {
        self.name == RestartName::No
    }

    /// docker's words for it (`on-failure`, `always`...), as `inspect` shows them.
    pub fn word(&self) -> &'static str {
        match self.name {
            RestartName::No => "no",
            RestartName::OnFailure => "on-failure",
            RestartName::Always => "always",
            RestartName::UnlessStopped => "unless-stopped",
        }
    }

    /// Whether a container that ended with `code`, after `restarts` restarts so far, starts
    /// again. One stopped on purpose (`stop`, `kill` with KILL) never does.
    pub fn restarts(&self, code: i32, restarts: u32, stopped: bool) -> bool {
        if stopped {
            return false;
        }
        match self.name {
            RestartName::No => false,
            RestartName::OnFailure => code != 0 && self.max_retries.is_none_or(|m| restarts < m),
            RestartName::Always | RestartName::UnlessStopped => true,
        }
    }
}

/// The wait before the next start, after `previous` (none before the first restart) and a
/// run that lasted `ran`.
pub fn next_backoff(previous: Option<Duration>, ran: Duration) -> Duration {
    match previous {
        Some(p) if ran < STEADY_RUN => (p * 2).min(MAX_BACKOFF),
        _ => FIRST_BACKOFF,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_words_parse() {
        assert_eq!(
            RestartPolicy::parse("no").unwrap(),
            RestartPolicy::default()
        );
        assert_eq!(
            RestartPolicy::parse("on-failure:3").unwrap(),
            RestartPolicy {
                name: RestartName::OnFailure,
                max_retries: Some(3)
            }
        );
        assert_eq!(
            RestartPolicy::parse("unless-stopped").unwrap().name,
            RestartName::UnlessStopped
        );
        for bad in ["sometimes", "always:3", "on-failure:x", "on-failure:-1"] {
            assert!(RestartPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn who_comes_back() {
        let on_failure = RestartPolicy::parse("on-failure:2").unwrap();
        assert!(on_failure.restarts(3, 0, false));
        assert!(on_failure.restarts(3, 1, false));
        assert!(!on_failure.restarts(3, 2, false));
        assert!(!on_failure.restarts(0, 0, false));
        let always = RestartPolicy::parse("always").unwrap();
        assert!(always.restarts(0, 1000, false));
        assert!(!always.restarts(137, 0, true));
        assert!(!RestartPolicy::default().restarts(1, 0, false));
    }

    #[test]
    fn backoff_doubles_to_a_cap_and_starts_over_after_a_steady_run() {
        let quick = Duration::from_millis(5);
        let mut b = next_backoff(None, quick);
        assert_eq!(b, FIRST_BACKOFF);
        b = next_backoff(Some(b), quick);
        assert_eq!(b, Duration::from_millis(200));
        for _ in 0..20 {
            b = next_backoff(Some(b), quick);
        }
        assert_eq!(b, MAX_BACKOFF);
        assert_eq!(next_backoff(Some(b), STEADY_RUN), FIRST_BACKOFF);
    }
}
