//! What a container is called: docker's rule for names, the hostname the kernel takes, and
//! the names minibox generates, docker-style: `adjective_scientist`.

use anyhow::{bail, Result};

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        bail!("invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* is allowed");
    }
    Ok(())
}

/// A hostname the kernel will take: 1 to 64 bytes of letters, digits, `-` and `.`.
pub fn check_hostname(h: &str) -> Result<String> {
    let ok = !h.is_empty()
        && h.len() <= 64
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !ok {
        bail!("invalid --hostname {h:?}: use 1 to 64 letters, digits, '-' or '.'");
    }
    Ok(h.to_string())
}

const ADJECTIVES: [&str; 24] = [
    "brave", "calm", "clever", "eager", "fervent", "gentle", "happy", "jolly", "keen", "kind",
    "lucid", "merry", "nimble", "quiet", "quirky", "sharp", "silly", "stoic", "sweet", "tender",
    "upbeat", "vivid", "witty", "zealous",
];

const NAMES: [&str; 24] = [
    "babbage", "curie", "darwin", "dijkstra", "euler", "fermi", "goodall", "hopper", "hypatia",
    "kepler", "knuth", "lamarr", "lovelace", "meitner", "noether", "pascal", "ritchie", "shannon",
    "thompson", "torvalds", "turing", "wozniak", "yalow", "zuse",
];

/// A free name derived from the container's (random) id; a number is added if all are taken.
pub fn generate(id: &str, taken: impl Fn(&str) -> bool) -> String {
    let seed = u64::from_str_radix(&id[..8.min(id.len())], 16).unwrap_or(0) as usize;
    let total = ADJECTIVES.len() * NAMES.len();
    for i in 0..total {
        let n = (seed + i) % total;
        let name = format!("{}_{}", ADJECTIVES[n / NAMES.len()], NAMES[n % NAMES.len()]);
        if !taken(&name) {
            return name;
        }
    }
    let base = format!(
        "{}_{}",
        ADJECTIVES[seed % ADJECTIVES.len()],
        NAMES[seed % NAMES.len()]
    );
    (2..)
        .map(|k| format!("{base}{k}"))
        .find(|n| !taken(n))
        .unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_avoid_taken_ones() {
        let id = "0123456789abcdef";
        let first = generate(id, |_| false);
        check_name(&first).unwrap();
        let second = generate(id, |n| n == first);
        assert_ne!(first, second);
        let numbered = generate(id, |n| !n.chars().last().unwrap().is_ascii_digit());
        assert!(numbered.ends_with('2'), "{numbered}");
    }
}
