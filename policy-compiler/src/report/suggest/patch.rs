//! Statements as edits of the profile files: where each service's statements go, and the
//! unified diff that `git apply` (and `patch -p1`) accepts.
//!
//! A service written in block style gets its statements at the end of its `allow:` list, in
//! the list's own indentation, or a new `allow:` after its last line. A service written in
//! flow style (`sonarr: {ports: …}`) cannot be edited line by line: its statements are
//! printed with where they go.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::plan::{NewService, Plan, ProfileService, Profiles, Statement};
use crate::profile::emit::scalar_string;

/// Lines to insert into a profile file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insertion {
    /// Index into [`Profiles::files`].
    pub file: usize,
    /// How many lines of the file come before the new ones.
    pub after: usize,
    /// The new lines, without line breaks.
    pub lines: Vec<String>,
    /// Index into [`Profiles::services`].
    pub service: usize,
    /// How many statements the lines hold.
    pub statements: usize,
}

/// Statements that cannot be placed by line, with the reason: the service and its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplaced {
    pub service: usize,
    pub why: String,
    pub lines: Vec<String>,
}

/// Where the statements of every service of the plan go.
pub fn insertions(plan: &Plan, profiles: &Profiles) -> (Vec<Insertion>, Vec<Unplaced>) {
    let mut placed = Vec::new();
    let mut unplaced = Vec::new();
    for edit in &plan.edits {
        let Some(service) = plan.services.get(edit.service).filter(|s| !s.new) else {
            continue;
        };
        let text = profiles
            .files
            .get(service.file)
            .map_or("", |f| f.text.as_ref());
        match place(text, service.line, &edit.statements) {
            Ok((after, lines)) => placed.push(Insertion {
                file: service.file,
                after,
                lines,
                service: edit.service,
                statements: edit.statements.len(),
            }),
            Err(why) => unplaced.push(Unplaced {
                service: edit.service,
                why,
                lines: edit.statements.iter().flat_map(|s| s.lines(0)).collect(),
            }),
        }
    }
    // New services after the statements of the last service, in the order of the plan.
    let mut opened: std::collections::BTreeSet<usize> = std::collections::BTreeSet::new();
    for new in &plan.new_services {
        let Some(service) = plan.services.get(new.service) else {
            continue;
        };
        let text = profiles
            .files
            .get(service.file)
            .map_or("", |f| f.text.as_ref());
        let statements = plan
            .edits
            .iter()
            .find(|e| e.service == new.service)
            .map_or(&[][..], |e| e.statements.as_slice());
        // A file without `services:` gets one, before its first new service.
        let open = opened.insert(service.file);
        match declare(text, service, new, statements, open) {
            Ok((after, lines)) => placed.push(Insertion {
                file: service.file,
                after,
                lines,
                service: new.service,
                statements: statements.len(),
            }),
            Err(why) => unplaced.push(Unplaced {
                service: new.service,
                why,
                lines: service_lines(service, new, statements, 0),
            }),
        }
    }
    placed.sort_by_key(|i| (i.file, i.after));
    (placed, unplaced)
}

/// A new service's lines, its name at `indent` spaces.
fn service_lines(
    service: &ProfileService,
    new: &NewService,
    statements: &[Statement],
    indent: usize,
) -> Vec<String> {
    let pad = " ".repeat(indent);
    let pairs = |items: Vec<(String, String)>| {
        let items: Vec<String> = items
            .iter()
            .map(|(k, v)| format!("{}: {v}", scalar_string(k)))
            .collect();
        format!("{{{}}}", items.join(", "))
    };
    let mut out = vec![
        format!(
            "{pad}{}: # suggested: a new service for {}",
            scalar_string(&service.name),
            new.seen
        ),
        format!(
            "{pad}  select: {}",
            pairs(
                service
                    .selector
                    .iter()
                    .map(|(k, v)| (k.clone(), scalar_string(v)))
                    .collect()
            )
        ),
    ];
    if !service.ports.is_empty() {
        out.push(format!(
            "{pad}  ports: {}",
            pairs(
                service
                    .ports
                    .iter()
                    .map(|(name, proto, first, _)| {
                        let port = match proto {
                            crate::objects::Proto::Tcp => first.to_string(),
                            p => format!("{first}/{p}"),
                        };
                        (name.clone(), port)
                    })
                    .collect()
            )
        ));
    }
    if !statements.is_empty() {
        out.push(format!("{pad}  allow:"));
        for s in statements {
            out.extend(s.lines(indent + 4));
        }
    }
    out
}

/// Where a new service goes: after the last line of the file's `services:` map, in the
/// indentation of its services (a new `services:` at the end of a file without one).
fn declare(
    text: &str,
    service: &ProfileService,
    new: &NewService,
    statements: &[Statement],
    open: bool,
) -> Result<(usize, Vec<String>), String> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(key) = lines
        .iter()
        .position(|l| l.starts_with("services:") || l.starts_with("\"services\":"))
    else {
        let mut out = if open {
            vec![String::new(), "services:".to_owned()]
        } else {
            vec![String::new()]
        };
        out.extend(service_lines(service, new, statements, 2));
        return Ok((lines.len(), out));
    };
    let value = lines
        .get(key)
        .and_then(|l| l.split_once(':'))
        .map_or("", |(_, v)| v)
        .trim();
    if !value.is_empty() && !value.starts_with('#') {
        return Err("the profile's `services:` is written in flow style".to_owned());
    }
    let mut last = key;
    let mut child: Option<usize> = None;
    for (j, line) in lines.iter().enumerate().skip(key + 1) {
        let t = line.trim_start();
        if t.is_empty() {
            continue;
        }
        let ind = indent(line);
        if ind == 0 {
            break;
        }
        last = j;
        if !t.starts_with('#') && child.is_none() {
            child = Some(ind);
        }
    }
    let mut out = vec![String::new()];
    out.extend(service_lines(service, new, statements, child.unwrap_or(2)));
    Ok((last + 1, out))
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Where the statements of the service named on line `key` (0-based) go: the number of lines
/// before them and their lines; `Err` when the service is not written in block style.
fn place(text: &str, key: usize, statements: &[Statement]) -> Result<(usize, Vec<String>), String> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(head) = lines.get(key) else {
        return Err("the service's line is not in the file".to_owned());
    };
    let ki = indent(head);
    let value = head.split_once(':').map_or("", |(_, v)| v).trim();
    if !value.is_empty() && !value.starts_with('#') {
        return Err("the service is written in flow style".to_owned());
    }
    let mut child: Option<usize> = None;
    let mut last = key;
    let mut in_allow = false;
    // The `allow:` list: its last line, and the indentation of its items.
    let mut allow: Option<(usize, Option<usize>)> = None;
    for (j, line) in lines.iter().enumerate().skip(key + 1) {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let ind = indent(line);
        if ind <= ki {
            break;
        }
        last = j;
        let c = *child.get_or_insert(ind);
        if ind == c && !t.starts_with('-') {
            in_allow = t.starts_with("allow:");
            if in_allow {
                let rest = t.trim_start_matches("allow:").trim();
                if !rest.is_empty() && !rest.starts_with('#') {
                    return Err("its `allow:` is written in flow style".to_owned());
                }
                allow = Some((j, None));
            }
        } else if in_allow && let Some((end, dash)) = &mut allow {
            *end = j;
            if t.starts_with('-') && dash.is_none() {
                *dash = Some(ind);
            }
        }
    }
    let c = child.unwrap_or(ki + 2);
    let (after, at, mut out) = match allow {
        Some((end, dash)) => (end + 1, dash.unwrap_or(c + 2), Vec::new()),
        None => (last + 1, c + 2, vec![format!("{}allow:", " ".repeat(c))]),
    };
    for s in statements {
        out.extend(s.lines(at));
    }
    Ok((after, out))
}

/// `text` with the insertions made (a file that does not end with a line break gets one).
pub fn apply(text: &str, insertions: &[&Insertion]) -> String {
    let mut at: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for i in insertions {
        at.entry(i.after)
            .or_default()
            .extend(i.lines.iter().map(String::as_str));
    }
    let mut out = String::new();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (n, line) in lines.iter().enumerate() {
        for l in at.get(&n).into_iter().flatten() {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str(line);
    }
    if let Some(rest) = at.range(lines.len()..).next().map(|(_, v)| v) {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        for l in rest {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// Lines of context around each insertion, as `git diff` writes them.
const CONTEXT: usize = 3;

/// The insertions as one unified diff, a file at a time (sorted by name), each file's
/// services named in a comment before its header (`git apply` skips such lines).
pub fn render_patch(
    profiles: &Profiles,
    services: &[ProfileService],
    insertions: &[Insertion],
) -> String {
    let mut by_file: BTreeMap<&str, (usize, Vec<&Insertion>)> = BTreeMap::new();
    for i in insertions {
        if let Some(f) = profiles.files.get(i.file) {
            by_file
                .entry(&f.name)
                .or_insert((i.file, Vec::new()))
                .1
                .push(i);
        }
    }
    let mut out = String::new();
    for (name, (file, mut ins)) in by_file {
        ins.sort_by_key(|i| i.after);
        let text = profiles.files.get(file).map_or("", |f| f.text.as_ref());
        let services: Vec<String> = ins
            .iter()
            .filter_map(|i| {
                let s = services.get(i.service)?;
                if s.new {
                    return Some(format!(
                        "new service `{}`{}",
                        s.name,
                        match i.statements {
                            0 => String::new(),
                            1 => " with 1 statement".to_owned(),
                            n => format!(" with {n} statements"),
                        }
                    ));
                }
                Some(format!(
                    "{} under `{}` (line {})",
                    if i.statements == 1 {
                        "1 statement".to_owned()
                    } else {
                        format!("{} statements", i.statements)
                    },
                    s.name,
                    s.line + 1
                ))
            })
            .collect();
        let _ = writeln!(out, "# {name}: {}", services.join(", "));
        let _ = writeln!(
            out,
            "diff --git a/{name} b/{name}\n--- a/{name}\n+++ b/{name}"
        );
        out.push_str(&hunks(text, &ins));
    }
    out
}

/// The hunks of one file's insertions (sorted by place).
fn hunks(text: &str, ins: &[&Insertion]) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let n = lines.len();
    // Insertions whose contexts touch share a hunk.
    let mut groups: Vec<Vec<&Insertion>> = Vec::new();
    for i in ins {
        match groups.last_mut() {
            Some(g) if g.last().is_some_and(|p| i.after <= p.after + 2 * CONTEXT) => g.push(i),
            _ => groups.push(vec![i]),
        }
    }
    let mut out = String::new();
    let mut added_before = 0;
    for g in groups {
        let (Some(first), Some(last)) = (g.first(), g.last()) else {
            continue;
        };
        let start = first.after.saturating_sub(CONTEXT);
        let end = (last.after + CONTEXT).min(n);
        let mut body = String::new();
        let (mut old, mut new) = (0, 0);
        let push_new = |body: &mut String, new: &mut usize, at: usize| {
            for i in g.iter().filter(|i| i.after == at) {
                for l in &i.lines {
                    let _ = writeln!(body, "+{l}");
                    *new += 1;
                }
            }
        };
        for k in start..end {
            push_new(&mut body, &mut new, k);
            let line = lines.get(k).copied().unwrap_or_default();
            let unterminated = !line.ends_with('\n');
            if unterminated && g.iter().any(|i| i.after >= n) {
                // The last line gets its line break before the new lines follow it.
                let _ = write!(body, "-{line}\n\\ No newline at end of file\n+{line}\n");
            } else if unterminated {
                let _ = write!(body, " {line}\n\\ No newline at end of file\n");
            } else {
                let _ = write!(body, " {line}");
            }
            old += 1;
            new += 1;
        }
        push_new(&mut body, &mut new, end);
        let _ = writeln!(
            out,
            "@@ -{},{old} +{},{new} @@",
            start + 1,
            start + 1 + added_before
        );
        out.push_str(&body);
        added_before += new - old;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(to: bool, peer: &str, port: &str) -> Statement {
        Statement {
            to,
            peers: vec![peer.to_owned()],
            ports: vec![port.to_owned()],
            flows: 1,
        }
    }

    const FILE: &str = "namespace: a\nservices:\n  x:\n    ports: {http: 80}\n    allow:\n      # c\n      - to: y\n        on: 80\n\n  y:\n    ports: {http: 80}\n  z: {ports: {http: 80}}\n";

    #[test]
    fn statements_go_at_the_end_of_the_allow_list_or_in_a_new_one() {
        let (after, lines) = place(FILE, 2, &[statement(true, "world", "443")]).unwrap_or_default();
        assert_eq!(after, 8);
        assert_eq!(lines, ["      - to: world", "        port: 443"]);
        let (after, lines) = place(FILE, 9, &[statement(false, "x", "http")]).unwrap_or_default();
        assert_eq!(after, 11);
        assert_eq!(
            lines,
            ["    allow:", "      - from: x", "        port: http"]
        );
        assert!(place(FILE, 11, &[]).is_err());
    }

    #[test]
    fn a_file_without_a_final_line_break_gets_one() {
        let ins = Insertion {
            file: 0,
            after: 2,
            lines: vec!["c".to_owned()],
            service: 0,
            statements: 1,
        };
        assert_eq!(apply("a\nb", &[&ins]), "a\nb\nc\n");
        assert_eq!(
            hunks("a\nb", &[&ins]),
            "@@ -1,2 +1,3 @@\n a\n-b\n\\ No newline at end of file\n+b\n+c\n"
        );
    }
}
