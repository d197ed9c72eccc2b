//! Splitting long messages to a platform's size limit.
//!
//! Splits prefer a line break, then a space, and only then cut inside a word; they never cut
//! inside a UTF-8 character. A cut inside a fenced code block closes the fence and reopens it
//! in the next part, so each part renders on its own.

/// How a platform measures its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthUnit {
    /// UTF-8 bytes (IRC, XMPP stanzas).
    Bytes,
    /// Unicode scalar values (Slack, Discord, Mattermost).
    Chars,
}

const FENCE: &str = "```";

/// Splits `text` into parts of at most `limit` units. A `limit` of 0 means unlimited.
pub fn split_message(text: &str, limit: usize, unit: LengthUnit) -> Vec<String> {
    if limit == 0 || measure(text, unit) <= limit {
        return vec![text.to_owned()];
    }
    // Room for a closing "\n```" and an opening "```\n" around a cut code block.
    let fence_room = FENCE.len() + 1;
    let mut parts = Vec::new();
    let mut rest = text;
    let mut reopen_fence = false;
    while !rest.is_empty() {
        let prefix = if reopen_fence { "```\n" } else { "" };
        let budget = limit.saturating_sub(measure(prefix, unit));
        if measure(rest, unit) <= budget {
            parts.push(format!("{prefix}{rest}"));
            break;
        }
        let in_fence_budget = budget.saturating_sub(fence_room).max(1);
        let mut cut = best_cut(rest, budget, unit);
        let mut closes_fence = fence_open_after(prefix, &rest[..cut]);
        if closes_fence {
            cut = best_cut(rest, in_fence_budget, unit);
            closes_fence = fence_open_after(prefix, &rest[..cut]);
        }
        let (head, tail) = rest.split_at(cut);
        let mut part = format!("{prefix}{}", head.trim_end_matches('\n'));
        if closes_fence {
            part.push('\n');
            part.push_str(FENCE);
        }
        parts.push(part);
        reopen_fence = closes_fence;
        rest = tail.strip_prefix('\n').unwrap_or(tail);
    }
    parts
}

fn measure(s: &str, unit: LengthUnit) -> usize {
    match unit {
        LengthUnit::Bytes => s.len(),
        LengthUnit::Chars => s.chars().count(),
    }
}

/// Byte index of the largest prefix within `budget` units, always on a char boundary.
fn max_prefix(s: &str, budget: usize, unit: LengthUnit) -> usize {
    match unit {
        LengthUnit::Bytes => {
            let mut i = budget.min(s.len());
            while i > 0 && !s.is_char_boundary(i) {
                i -= 1;
            }
            if i == 0 {
                // A single character wider than the budget: send it whole rather than loop.
                s.chars().next().map_or(0, char::len_utf8)
            } else {
                i
            }
        }
        LengthUnit::Chars => s
            .char_indices()
            .nth(budget.max(1))
            .map_or(s.len(), |(i, _)| i),
    }
}

fn best_cut(s: &str, budget: usize, unit: LengthUnit) -> usize {
    let hard = max_prefix(s, budget, unit);
    if hard >= s.len() {
        return s.len();
    }
    let window = &s[..hard];
    // Don't make parts absurdly small just to land on a nice boundary.
    let min_useful = hard / 2;
    if let Some(i) = window.rfind('\n').filter(|&i| i > min_useful) {
        return i + 1;
    }
    if let Some(i) = window.rfind(' ').filter(|&i| i > min_useful) {
        return i + 1;
    }
    hard
}

/// Whether a code fence is left open at the end of `prefix + chunk`.
fn fence_open_after(prefix: &str, chunk: &str) -> bool {
    (prefix.matches(FENCE).count() + chunk.matches(FENCE).count()) % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split_message("hello", 10, LengthUnit::Bytes), vec!["hello"]);
        assert_eq!(split_message("hello", 0, LengthUnit::Bytes), vec!["hello"]);
    }

    #[test]
    fn parts_respect_the_limit_and_keep_all_text() {
        let text = "word ".repeat(200);
        let parts = split_message(&text, 37, LengthUnit::Bytes);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.len() <= 37), "{parts:?}");
        let joined: String = parts.concat();
        assert_eq!(joined.split_whitespace().count(), 200);
    }

    #[test]
    fn never_splits_inside_a_utf8_character() {
        let text = "é".repeat(100);
        for limit in [3, 5, 7, 10] {
            let parts = split_message(&text, limit, LengthUnit::Bytes);
            assert!(parts.iter().all(|p| p.len() <= limit));
            assert_eq!(parts.concat(), text);
        }
    }

    #[test]
    fn counts_chars_when_asked() {
        let text = "日本語".repeat(10);
        let parts = split_message(&text, 10, LengthUnit::Chars);
        assert!(parts.iter().all(|p| p.chars().count() <= 10));
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn prefers_line_breaks() {
        let text = "line one is here\nline two is here\nline three";
        let parts = split_message(text, 20, LengthUnit::Bytes);
        assert_eq!(parts[0], "line one is here");
        assert_eq!(parts[1], "line two is here");
    }

    #[test]
    fn code_block_is_closed_and_reopened() {
        let body: String = (0..30).map(|i| format!("output line {i}\n")).collect();
        let text = format!("result:\n```\n{body}```");
        let parts = split_message(&text, 80, LengthUnit::Bytes);
        assert!(parts.len() > 2);
        for p in &parts {
            assert!(p.len() <= 80, "{p:?}");
            assert_eq!(p.matches("```").count() % 2, 0, "unbalanced fence in {p:?}");
        }
        let all = parts.concat();
        for i in 0..30 {
            assert!(
                all.contains(&format!("output line {i}\n"))
                    || all.contains(&format!("output line {i}"))
            );
        }
    }
}
