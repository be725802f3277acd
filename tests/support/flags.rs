//! Long flags in help texts and docs: which `--flags` a help text names that a doc does not.

use std::collections::BTreeSet;

/// Every `--long-flag` in `text`, once each, in order (`--help` and `--version` included).
pub fn long_flags(text: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    for (start, _) in text.match_indices("--") {
        // A flag starts a word: `--listen`, not the middle of `a--b` or of `---`.
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '-') {
            continue;
        }
        let name: String = text[start + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
            .trim_end_matches('-')
            .to_string();
        if name.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
            flags.insert(format!("--{name}"));
        }
    }
    flags
}

/// The long flags of `help` that `doc` never names (as a whole word: `--max` is not found in
/// `--max-connections`).
pub fn missing_flags(help: &str, doc: &str) -> Vec<String> {
    let documented = long_flags(doc);
    long_flags(help).into_iter().filter(|flag| !documented.contains(flag)).collect()
}
