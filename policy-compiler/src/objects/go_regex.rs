//! Whether a regular expression compiles with Go's `regexp` (RE2 syntax, Perl flags), as the
//! Cilium agent compiles HTTP `path` and `method` (cilium/cilium@507103c6
//! pkg/policy/api/http.go:121-134, `regexp.Compile`).
//!
//! Go's dialect and Rust's `regex` differ in what they refuse. A pre-pass follows Go's parser
//! (`regexp/syntax/parse.go`) over the pattern: it refuses what Go refuses and Rust accepts
//! (stacked repetitions such as `a**`, repeat counts above 1000, flags other than `imsU`,
//! unknown POSIX classes), and rewrites what Go accepts and Rust refuses (a `{` that starts no
//! `{n}`, `{n,}`, `{n,m}` is a literal; `\Q…\E` quotes; octal escapes; any escaped
//! punctuation; `\p{^Greek}`; `[` inside a class) into an equivalent Rust pattern. That pattern
//! then goes through Rust's parser, which checks what is left (Unicode class names, nesting).

use std::fmt::Write as _;

/// `Err` with a one-line reason when Go's `regexp.Compile` refuses `pattern`.
pub fn check(pattern: &str) -> Result<(), String> {
    let rust = translate(pattern)?;
    regex::RegexBuilder::new(&rust)
        .size_limit(usize::MAX)
        .dfa_size_limit(1 << 20)
        .build()
        .map(|_| ())
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => "expression too large".to_owned(),
            other => crate::diagnostic::regex_reason(&other),
        })
}

/// The POSIX classes Go knows inside `[...]` (`[:alpha:]`, negated `[:^alpha:]`).
const POSIX: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// One open group: the largest product of `{n,m}` counts on a path inside it so far, and that
/// of the last item of the current concatenation (the operand of a following repetition).
#[derive(Debug, Default, Clone, Copy)]
struct Group {
    most: u64,
    last: Option<u64>,
}

impl Group {
    fn push(&mut self, item: u64) {
        if let Some(last) = self.last {
            self.most = self.most.max(last);
        }
        self.last = Some(item);
    }

    fn close(self) -> u64 {
        self.most.max(self.last.unwrap_or(0))
    }
}

/// `text` without its first `n` bytes (empty when shorter).
fn skip(text: &str, n: usize) -> &str {
    text.get(n..).unwrap_or_default()
}

/// The Rust form of a Go pattern, or Go's refusal.
fn translate(pattern: &str) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut current = Group::default();
    let mut outer: Vec<Group> = Vec::new();
    // Whether the previous token was a repetition (`a**` is refused: "invalid nested
    // repetition operator").
    let mut after_repeat = false;
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        let mut repeated = false;
        match c {
            '(' => {
                let (after, opens) = group(rest, &mut out)?;
                if opens {
                    outer.push(current);
                    current = Group::default();
                }
                rest = after;
            }
            ')' => {
                let Some(mut parent) = outer.pop() else {
                    return Err(format!("unexpected ): `{pattern}`"));
                };
                parent.push(current.close());
                current = parent;
                out.push(')');
                rest = skip(rest, 1);
            }
            '|' => {
                current.most = current.close();
                current.last = None;
                out.push('|');
                rest = skip(rest, 1);
            }
            '*' | '+' | '?' => {
                if after_repeat {
                    return Err(format!(
                        "invalid nested repetition operator: `{}`",
                        stacked(pattern, rest)
                    ));
                }
                out.push(c);
                rest = non_greedy(skip(rest, 1), &mut out);
                repeated = true;
            }
            '{' => match repeat_count(rest) {
                Some(((min, max), len)) => {
                    if after_repeat {
                        return Err(format!(
                            "invalid nested repetition operator: `{}`",
                            stacked(pattern, rest)
                        ));
                    }
                    let text = rest.get(..len).unwrap_or(rest);
                    if min > 1000 || matches!(max, Some(Some(m)) if m > 1000 || min > m) {
                        return Err(format!("invalid repeat count: `{text}`"));
                    }
                    // Go's `repeatIsValid`: along any path the counts multiply to at most
                    // 1000; `{0}` ends the path, an unbounded repeat counts its minimum.
                    let inner = current.last.unwrap_or(0);
                    let count = match max {
                        None => Some(min),
                        Some(Some(m)) => Some(m),
                        Some(None) => None,
                    };
                    let product = match count {
                        Some(0) => 0,
                        Some(m) => u64::from(m).saturating_mul(inner.max(1)),
                        None if min == 0 => inner,
                        None => u64::from(min).saturating_mul(inner.max(1)),
                    };
                    if product > 1000 {
                        return Err(format!("invalid repeat count: `{text}`"));
                    }
                    if current.last.is_some() {
                        current.last = Some(product);
                    }
                    // The counts are checked: Rust only needs the syntax (and would compile
                    // large counts slowly).
                    out.push_str("{0,1}");
                    rest = non_greedy(skip(rest, len), &mut out);
                    repeated = true;
                }
                None => {
                    out.push_str(r"\{");
                    current.push(0);
                    rest = skip(rest, 1);
                }
            },
            '[' => {
                rest = class(rest, &mut out)?;
                current.push(0);
            }
            '\\' => {
                rest = escape(rest, &mut out)?;
                current.push(0);
            }
            _ => {
                literal(c, &mut out);
                current.push(0);
                rest = skip(rest, c.len_utf8());
            }
        }
        after_repeat = repeated;
    }
    if !outer.is_empty() {
        return Err(format!("missing closing ): `{pattern}`"));
    }
    Ok(out)
}

/// The stacked operators Go quotes in its message: the previous one and this one.
fn stacked<'a>(pattern: &'a str, rest: &'a str) -> &'a str {
    let at = pattern.len().saturating_sub(rest.len());
    let head = pattern.get(..at).unwrap_or_default();
    let is_op = |c: char| matches!(c, '*' | '+' | '?' | '{' | '}' | ',' | '0'..='9');
    let start = head
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_op(*c))
        .last()
        .map_or(at, |(i, _)| i);
    let end = match repeat_count(rest) {
        Some((_, len)) => len,
        None => 1,
    };
    let end = end + usize::from(skip(rest, end).starts_with('?'));
    pattern.get(start..at + end).unwrap_or(rest)
}

/// A `?` after a repetition makes it non-greedy (and is not itself a repetition).
fn non_greedy<'a>(rest: &'a str, out: &mut String) -> &'a str {
    match rest.strip_prefix('?') {
        Some(after) => {
            out.push('?');
            after
        }
        None => rest,
    }
}

/// A counted repetition: minimum, maximum (`None` for `{n}`, `Some(None)` for `{n,}`).
type Counts = (u32, Option<Option<u32>>);

/// Go's `parseRepeat`: `{n}`, `{n,}` or `{n,m}` with decimal numbers without leading zeros,
/// and its length. Anything else is `None`, and the `{` is a literal. A number too large to
/// read is `u32::MAX`.
fn repeat_count(text: &str) -> Option<(Counts, usize)> {
    let body = text.strip_prefix('{')?;
    let (min, after_min) = number(body)?;
    let (max, after) = match after_min.strip_prefix(',') {
        Some(after_comma) if after_comma.starts_with('}') => (Some(None), after_comma),
        Some(after_comma) => {
            let (max, after_max) = number(after_comma)?;
            (Some(Some(max)), after_max)
        }
        None => (None, after_min),
    };
    let after = after.strip_prefix('}')?;
    Some(((min, max), text.len() - after.len()))
}

fn number(text: &str) -> Option<(u32, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || (digits >= 2 && text.starts_with('0')) {
        return None;
    }
    let num = text.get(..digits)?;
    Some((num.parse().unwrap_or(u32::MAX), skip(text, digits)))
}

/// `(` starting a capture, a named capture or a flag group: the text after it, and whether
/// it opens a group (a flag group such as `(?i)` does not).
fn group<'a>(text: &'a str, out: &mut String) -> Result<(&'a str, bool), String> {
    let Some(after) = text.strip_prefix("(?") else {
        out.push('(');
        return Ok((skip(text, 1), true));
    };
    if let Some(named) = after.strip_prefix("P<").or_else(|| after.strip_prefix('<')) {
        let Some(end) = named.find('>') else {
            return Err(format!("invalid named capture: `{text}`"));
        };
        let name = named.get(..end).unwrap_or_default();
        // `isValidCaptureName`: ASCII letters, digits and `_`.
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            let shown = text
                .get(..text.len() - named.len() + end + 1)
                .unwrap_or(text);
            return Err(format!("invalid named capture: `{shown}`"));
        }
        // Rust refuses a name used twice, Go does not: names do not matter to the syntax.
        out.push('(');
        return Ok((skip(named, end + 1), true));
    }
    // Flags: `(?flags)` or `(?flags:`, of `imsU`, with at most one `-`, followed by a flag.
    let mut flags = String::new();
    let mut negated = false;
    let mut flag_since_minus = false;
    for (i, c) in after.char_indices() {
        match c {
            'i' | 'm' | 's' | 'U' => {
                flags.push(c);
                flag_since_minus = true;
            }
            '-' if !negated => {
                negated = true;
                flag_since_minus = false;
                flags.push('-');
            }
            ':' | ')' if !negated || flag_since_minus => {
                let rest = skip(after, i + 1);
                if c == ':' {
                    let _ = write!(out, "(?{flags}:");
                    return Ok((rest, true));
                }
                if !flags.is_empty() {
                    let _ = write!(out, "(?{flags})");
                }
                return Ok((rest, false));
            }
            _ => {
                let shown = text.get(..2 + i + c.len_utf8()).unwrap_or(text);
                return Err(format!("invalid or unsupported Perl syntax: `{shown}`"));
            }
        }
    }
    Err(format!("invalid or unsupported Perl syntax: `{text}`"))
}

/// A literal character, written so that Rust reads it as that character.
fn literal(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() || !c.is_ascii() || matches!(c, '.' | '^' | '$') {
        // Letters, digits, and the meta characters Go and Rust read alike.
        out.push(c);
    } else {
        hex(c, out);
    }
}

fn hex(c: char, out: &mut String) {
    let _ = write!(out, r"\x{{{:X}}}", u32::from(c));
}

/// An escape outside a class: `\Q…\E`, assertions, Perl and Unicode classes, and the escapes
/// of single characters (`parseEscape`).
fn escape<'a>(text: &'a str, out: &mut String) -> Result<&'a str, String> {
    let after = skip(text, 1);
    let Some(c) = after.chars().next() else {
        return Err("trailing backslash at end of expression".to_owned());
    };
    match c {
        'Q' => {
            let quoted = skip(after, 1);
            let (lit, rest) = quoted.split_once(r"\E").unwrap_or((quoted, ""));
            lit.chars().for_each(|ch| hex(ch, out));
            Ok(rest)
        }
        'A' | 'z' | 'b' | 'B' | 'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
            out.push('\\');
            out.push(c);
            Ok(skip(after, 1))
        }
        'p' | 'P' => unicode_class(text, out),
        _ => {
            let (ch, rest) = char_escape(text)?;
            hex(ch, out);
            Ok(rest)
        }
    }
}

/// `\pL`, `\p{Greek}`, `\p{^Greek}` (Rust writes the negation `\P{Greek}`). Go 1.25 looks
/// names up loosely (case, spaces, `_` and `-` ignored) as Rust does: Rust checks the name.
fn unicode_class<'a>(text: &'a str, out: &mut String) -> Result<&'a str, String> {
    let negated = text.as_bytes().get(1) == Some(&b'P');
    let after = skip(text, 2);
    let (name, rest) = match after.strip_prefix('{') {
        Some(braced) => match braced.split_once('}') {
            Some(split) => split,
            None => return Err(format!("invalid character class range: `{text}`")),
        },
        None => match after.chars().next() {
            Some(c) => (
                after.get(..c.len_utf8()).unwrap_or_default(),
                skip(after, c.len_utf8()),
            ),
            None => return Err(format!("invalid character class range: `{text}`")),
        },
    };
    let (negated, name) = match name.strip_prefix('^') {
        Some(n) => (!negated, n),
        None => (negated, name),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' '))
    {
        return Err(format!("invalid character class range: `\\p{{{name}}}`"));
    }
    let _ = write!(out, r"\{}{{{name}}}", if negated { 'P' } else { 'p' });
    Ok(rest)
}

/// Go's `parseEscape` of one character: octal, `\x`, `\a\f\n\r\t\v`, escaped punctuation.
fn char_escape(text: &str) -> Result<(char, &str), String> {
    let after = skip(text, 1);
    let mut chars = after.chars();
    let Some(c) = chars.next() else {
        return Err("trailing backslash at end of expression".to_owned());
    };
    let rest = chars.as_str();
    let invalid = || {
        let shown: String = text.chars().take(2).collect();
        Err(format!("invalid escape sequence: `{shown}`"))
    };
    let octal = |b: &u8| (b'0'..=b'7').contains(b);
    match c {
        // A lone `\1`–`\7` would be a backreference.
        '1'..='7' if !rest.as_bytes().first().is_some_and(octal) => invalid(),
        '0'..='7' => {
            let digits = 1 + rest.bytes().take(2).take_while(octal).count();
            let value = after
                .get(..digits)
                .and_then(|d| u32::from_str_radix(d, 8).ok())
                .and_then(char::from_u32)
                .unwrap_or('\0');
            Ok((value, skip(after, digits)))
        }
        'x' => match rest.strip_prefix('{') {
            Some(braced) => {
                let Some((digits, rest)) = braced.split_once('}') else {
                    return Err(format!("invalid escape sequence: `{text}`"));
                };
                // Any number of hex digits, at least one, up to U+10FFFF; Go takes a
                // surrogate too, which stands for nothing Rust can write: U+FFFD instead.
                let value = digits.chars().try_fold(0u32, |v, d| {
                    d.to_digit(16)
                        .map(|d| v * 16 + d)
                        .filter(|v| *v <= 0x10_FFFF)
                });
                match value.filter(|_| !digits.is_empty()) {
                    Some(v) => Ok((char::from_u32(v).unwrap_or('\u{FFFD}'), rest)),
                    None => Err(format!("invalid escape sequence: `\\x{{{digits}}}`")),
                }
            }
            None => {
                let value = rest
                    .get(..2)
                    .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|d| u32::from_str_radix(d, 16).ok())
                    .and_then(char::from_u32);
                match value {
                    Some(ch) => Ok((ch, skip(rest, 2))),
                    None => Err(format!(
                        "invalid escape sequence: `{}`",
                        text.get(..4).unwrap_or(text)
                    )),
                }
            }
        },
        'a' => Ok(('\u{7}', rest)),
        'f' => Ok(('\u{c}', rest)),
        'n' => Ok(('\n', rest)),
        'r' => Ok(('\r', rest)),
        't' => Ok(('\t', rest)),
        'v' => Ok(('\u{b}', rest)),
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok((c, rest)),
        _ => invalid(),
    }
}

/// A character class (`parseClass`). Literals are written in hex, so that Rust's class syntax
/// (nested `[`, `&&`, `--`, `~~`) cannot change their meaning.
fn class<'a>(text: &'a str, out: &mut String) -> Result<&'a str, String> {
    let mut rest = skip(text, 1);
    out.push('[');
    if let Some(r) = rest.strip_prefix('^') {
        out.push('^');
        rest = r;
    }
    let mut first = true;
    loop {
        if rest.is_empty() {
            return Err(format!("missing closing ]: `{text}`"));
        }
        if !first && let Some(after) = rest.strip_prefix(']') {
            out.push(']');
            return Ok(after);
        }
        first = false;
        if let Some(named) = rest.strip_prefix("[:")
            && let Some((name, after)) = named.split_once(":]")
        {
            if !POSIX.contains(&name.strip_prefix('^').unwrap_or(name)) {
                return Err(format!("invalid character class range: `[:{name}:]`"));
            }
            let _ = write!(out, "[:{name}:]");
            rest = after;
            continue;
        }
        if rest.starts_with(r"\p") || rest.starts_with(r"\P") {
            rest = unicode_class(rest, out)?;
            continue;
        }
        if let Some(perl) = [r"\d", r"\D", r"\s", r"\S", r"\w", r"\W"]
            .into_iter()
            .find(|p| rest.starts_with(p))
        {
            out.push_str(perl);
            rest = skip(rest, 2);
            continue;
        }
        let start = rest;
        let (lo, after_lo) = class_char(rest, text)?;
        rest = after_lo;
        hex(lo, out);
        if let Some(range) = rest.strip_prefix('-')
            && !range.is_empty()
            && !range.starts_with(']')
        {
            let (hi, after_hi) = class_char(range, text)?;
            if hi < lo {
                let shown = start.get(..start.len() - after_hi.len()).unwrap_or(start);
                return Err(format!("invalid character class range: `{shown}`"));
            }
            out.push('-');
            hex(hi, out);
            rest = after_hi;
        }
    }
}

fn class_char<'a>(text: &'a str, whole: &str) -> Result<(char, &'a str), String> {
    match text.chars().next() {
        None => Err(format!("missing closing ]: `{whole}`")),
        Some('\\') => char_escape(text),
        Some(c) => Ok((c, skip(text, c.len_utf8()))),
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::check;

    /// What Go's `regexp.Compile` accepts (checked against Go's `regexp/syntax` parser rules).
    #[test]
    fn go_accepts() {
        for p in [
            "/api/{id}",
            "/api/{id}/x{",
            "{",
            "}",
            "a{,5}",
            "a{01}",
            "a{2}",
            "a{2,}",
            "a{2,1000}",
            "a{1000}",
            "(a{10}){100}",
            "((a{500}){0}){10}",
            "(a{500}b*){2}",
            r"\Q/a.b*{\E",
            r"\Qunterminated",
            r"\Q\E",
            r"a\.b\/c\-d\@",
            r"\0\01\12",
            r"\x41\x{1F600}\x{0000000041}\x{D800}",
            r"\p{Greek}\pL\p{^Greek}\PL",
            "[[:alpha:]]",
            "[[:^alpha:]x]",
            "[a[]",
            "[]a]",
            "[^]a]",
            "[a-]",
            "[&&~~]",
            "[--a]",
            r"[\d\pL\x41-\x5A]",
            "a*?",
            "a+?b??c{2}?",
            "^*",
            "(?i)GET|POST",
            "(?i:get)",
            "(?is-mU:a)",
            "(?)",
            "(?P<n>a)(?P<n>b)",
            "(?<name>a)",
            "$",
            "GET",
            "/public/.*",
        ] {
            assert_eq!(check(p), Ok(()), "{p}");
        }
    }

    /// What Go refuses, with the reason Go gives.
    #[test]
    fn go_refuses() {
        for (p, why) in [
            ("a**", "invalid nested repetition operator: `**`"),
            ("/.*+", "invalid nested repetition operator: `*+`"),
            ("a+*", "invalid nested repetition operator: `+*`"),
            ("a*??", "invalid nested repetition operator: `*??`"),
            ("a{2}{3}", "invalid nested repetition operator: `{2}{3}`"),
            ("a{2}*", "invalid nested repetition operator: `{2}*`"),
            ("a{1001}", "invalid repeat count: `{1001}`"),
            ("a{1,1001}", "invalid repeat count: `{1,1001}`"),
            ("a{2,1}", "invalid repeat count: `{2,1}`"),
            ("(a{10}){101}", "invalid repeat count: `{101}`"),
            ("((a{10}b){10}){11}", "invalid repeat count: `{11}`"),
            ("(a{2,}){501}", "invalid repeat count: `{501}`"),
            ("((a{500}){1}){10}", "invalid repeat count: `{10}`"),
            ("(a{500}|b){3}", "invalid repeat count: `{3}`"),
            ("(?x)a", "invalid or unsupported Perl syntax: `(?x`"),
            ("(?i-)a", "invalid or unsupported Perl syntax: `(?i-)`"),
            ("(?P=n)", "invalid or unsupported Perl syntax: `(?P`"),
            ("(?P<>a)", "invalid named capture: `(?P<>`"),
            ("(?P<é>a)", "invalid named capture: `(?P<é>`"),
            (r"\x{110000}", "invalid escape sequence: `\\x{110000}`"),
            (r"\x{}", "invalid escape sequence: `\\x{}`"),
            ("[[:foo:]]", "invalid character class range: `[:foo:]`"),
            ("[z-a]", "invalid character class range: `z-a`"),
            ("[~--]", "invalid character class range: `~--`"),
            (r"\1", "invalid escape sequence: `\\1`"),
            (r"\Z", "invalid escape sequence: `\\Z`"),
            (r"\C", "invalid escape sequence: `\\C`"),
            ("a\\", "trailing backslash at end of expression"),
            ("(a", "missing closing ): `(a`"),
            ("a)", "unexpected ): `a)`"),
            ("[a", "missing closing ]: `[a`"),
        ] {
            assert_eq!(check(p).unwrap_err(), why, "{p}");
        }
        // What Rust's parser still finds.
        assert!(check("*a").is_err());
        assert!(check(r"\p{Nope}").is_err());
    }
}
