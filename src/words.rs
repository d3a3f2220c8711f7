//! Counts in sentences people read: "1 conflict", "2 conflicts".

/// `n` followed by `one` or `many`: `count(1, "dead letter", "dead letters")`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn one_takes_the_singular_everything_else_the_plural() {
        assert_eq!(count(0, "conflict", "conflicts"), "0 conflicts");
        assert_eq!(count(1, "conflict", "conflicts"), "1 conflict");
        assert_eq!(
            count(2, "write pending", "writes pending"),
            "2 writes pending"
        );
    }
}
