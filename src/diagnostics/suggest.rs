//! Did-you-mean: the known word closest to what the user wrote.

/// The candidate nearest to `word` by edit distance, if it is near enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    closest_within(word, candidates, (word.chars().count() / 3).max(1) + 1)
}

/// The candidate nearest to `word`, at most `limit` edits away.
pub fn closest_within<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Option<&'a str> {
    let length = word.chars().count();
    candidates
        .into_iter()
        // Words whose lengths differ by more than the limit cannot be within it.
        .filter(|c| {
            c.len().abs_diff(length) <= limit * 4 && c.chars().count().abs_diff(length) <= limit
        })
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|&(distance, _)| distance <= limit)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn finds_typos_but_not_unrelated_words() {
        assert_eq!(closest("retires", ["retries", "timeout"]), Some("retries"));
        assert_eq!(closest("strng", ["string", "int"]), Some("string"));
        assert_eq!(
            closest("fibonacci", ["constant", "linear", "exponential"]),
            None
        );
    }
}
