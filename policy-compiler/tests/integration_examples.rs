//! The CI integrations users copy run command lines that netpol accepts:
//!
//! * `examples/github/netpol.yaml` (the pull request workflow): every `netpol <subcommand> …`
//!   of its `run:` scripts, after the workflow's and the step's `env:` are expanded as the shell
//!   would, parses with the real command line parser; it checks, compiles and diffs; it keeps
//!   one comment by its marker, may write to pull requests, and checks out the whole history;
//! * `.pre-commit-hooks.yaml` and `examples/pre-commit-config.yaml`: each hook's entry, with the
//!   example's `args:`, parses too, and README.md shows that example.
//!
//! `diff` is skipped only while the parser has no such subcommand, so its command lines are
//! checked from the day it exists.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::{CommandFactory, Parser};
use netpol_compiler::cli::Cli;
use serde_json::Value;

/// The marker by which the workflow finds its own comment again (the first line of
/// `netpol diff --format md`).
const MARKER: &str = "<!-- netpol-diff -->";

/// Marks an expansion the test cannot know (an unset variable, an unknown expression): a netpol
/// command line holding it fails the test.
const UNKNOWN: char = '\u{0}';

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// YAML 1.2 booleans only: a workflow's `on:` stays a string.
fn read_yaml(relative: &str) -> Value {
    let path = repo_root().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let options = serde_saphyr::options! {
        strict_booleans: true,
    };
    serde_saphyr::from_str_with_options::<Value>(&text, options)
        .unwrap_or_else(|e| panic!("{relative} is not YAML: {e}"))
}

/// Parse `args` (without the program name) as `netpol` would, unless it is `diff` and the
/// parser has no `diff` yet. Returns whether it was checked.
fn assert_parses(origin: &str, args: &[String]) -> bool {
    let sub = args.first().map(String::as_str).unwrap_or_default();
    if sub == "diff" && Cli::command().find_subcommand("diff").is_none() {
        eprintln!("{origin}: `netpol diff` does not exist yet, not checked: {args:?}");
        return false;
    }
    for arg in args {
        assert!(
            !arg.contains(UNKNOWN),
            "{origin}: `netpol {}` uses an unset variable or an unknown expression",
            args.join(" ").replace(UNKNOWN, "?")
        );
    }
    let argv = std::iter::once("netpol").chain(args.iter().map(String::as_str));
    // `--help` and `--version` come back as errors that are not usage errors.
    if let Err(e) = Cli::try_parse_from(argv)
        && e.use_stderr()
    {
        panic!(
            "{origin}: `netpol {}` is refused by the command line parser:\n{}",
            args.join(" "),
            e.render()
        );
    }
    true
}

// ---------------------------------------------------------------------------------------------
// The workflow

/// What GitHub substitutes for the `${{ … }}` expressions of `run:` and `env:` values, as in a
/// pull request against `main`.
fn expression(expr: &str) -> String {
    match expr.trim() {
        "github.base_ref" => "main".to_string(),
        "github.server_url" => "https://github.com".to_string(),
        "github.repository" => "owner/gitops".to_string(),
        "github.run_id" => "1".to_string(),
        "steps.diff.outputs.status" => "1".to_string(),
        other => format!("{UNKNOWN}{other}"),
    }
}

/// Replace every `${{ … }}` of `text`.
fn substitute_expressions(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = after
            .find("}}")
            .unwrap_or_else(|| panic!("unclosed `${{{{` in {text:?}"));
        out.push_str(&expression(&after[..end]));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The `env:` of a workflow, job or step, its values' expressions substituted.
fn env_of(node: &Value) -> BTreeMap<String, String> {
    let Some(map) = node.get("env").and_then(Value::as_object) else {
        return BTreeMap::new();
    };
    map.iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), substitute_expressions(&value))
        })
        .collect()
}

/// Variables the runner sets (placeholders: only their being set matters).
fn runner_env() -> BTreeMap<String, String> {
    [
        ("HOME", "/home/runner"),
        ("GITHUB_OUTPUT", "/home/runner/work/_temp/output"),
        ("GITHUB_PATH", "/home/runner/work/_temp/path"),
        ("GITHUB_STEP_SUMMARY", "/home/runner/work/_temp/summary"),
        ("GITHUB_WORKSPACE", "/home/runner/work/gitops/gitops"),
        ("RUNNER_TEMP", "/home/runner/work/_temp"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Every `netpol …` command of a workflow: (where, arguments after `netpol`).
fn workflow_commands(workflow: &Value) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    let jobs = workflow["jobs"].as_object().expect("no jobs");
    for (job_id, job) in jobs {
        let steps = job["steps"].as_array().expect("a job without steps");
        for (i, step) in steps.iter().enumerate() {
            let Some(run) = step.get("run").and_then(Value::as_str) else {
                continue;
            };
            let mut env = runner_env();
            env.extend(env_of(workflow));
            env.extend(env_of(job));
            env.extend(env_of(step));
            let name = step.get("name").and_then(Value::as_str).unwrap_or("");
            let origin = format!("job `{job_id}` step {i} `{name}`");
            for command in shell::commands(&substitute_expressions(run), &env) {
                if let Some(args) = netpol_args(&command) {
                    found.push((origin.clone(), args));
                }
            }
        }
    }
    found
}

/// The arguments of a simple command that runs `netpol`, after shell keywords and variable
/// assignments.
fn netpol_args(command: &[String]) -> Option<Vec<String>> {
    const KEYWORDS: &[&str] = &[
        "!", "if", "then", "else", "elif", "do", "while", "until", "{", "time", "exec",
    ];
    let start = command.iter().position(|word| {
        !KEYWORDS.contains(&word.as_str())
            && !word
                .split_once('=')
                .is_some_and(|(name, _)| is_name(name) && !name.is_empty())
    })?;
    let program = &command[start];
    (program == "netpol" || program.ends_with("/netpol")).then(|| command[start + 1..].to_vec())
}

fn is_name(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

#[test]
fn the_workflow_runs_netpol_command_lines_the_parser_accepts() {
    let workflow = read_yaml("examples/github/netpol.yaml");
    let commands = workflow_commands(&workflow);
    let subcommands: BTreeSet<&str> = commands
        .iter()
        .filter_map(|(_, args)| args.first().map(String::as_str))
        .collect();
    for needed in ["check", "compile", "diff"] {
        assert!(
            subcommands.contains(needed),
            "the workflow runs no `netpol {needed}`: found {commands:?}"
        );
    }
    let mut checked = 0;
    for (origin, args) in &commands {
        if assert_parses(origin, args) {
            checked += 1;
        }
    }
    assert!(checked >= 2, "{commands:?}");

    // The report is a Markdown comment, gated on the changes the variable names.
    let diff = commands
        .iter()
        .find(|(_, args)| args.first().is_some_and(|a| a == "diff"))
        .map(|(_, args)| args.join(" "))
        .unwrap();
    for part in [
        "--base origin/main",
        "--head HEAD",
        "--format md",
        "--fail-on new-world-exposure,invalid-policy",
    ] {
        assert!(diff.contains(part), "`netpol {diff}` lacks `{part}`");
    }
}

#[test]
fn the_workflow_keeps_one_comment_may_write_to_pull_requests_and_reads_the_history() {
    let workflow = read_yaml("examples/github/netpol.yaml");
    let text = std::fs::read_to_string(repo_root().join("examples/github/netpol.yaml")).unwrap();
    assert!(
        text.contains(MARKER),
        "the workflow does not look for {MARKER}"
    );
    assert!(
        workflow["on"].get("pull_request").is_some(),
        "not run on pull requests: {}",
        workflow["on"]
    );

    // Least privilege: read the code, write the comment and the lint findings (code
    // scanning), nothing else.
    let permissions = workflow["permissions"]
        .as_object()
        .expect("no top-level `permissions:`");
    assert_eq!(
        permissions.get("pull-requests"),
        Some(&Value::from("write"))
    );
    assert_eq!(permissions.get("contents"), Some(&Value::from("read")));
    assert_eq!(
        permissions.get("security-events"),
        Some(&Value::from("write"))
    );
    assert_eq!(permissions.len(), 3, "{permissions:?}");

    let steps: Vec<&Value> = workflow["jobs"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|job| job["steps"].as_array().unwrap())
        .collect();
    let uses: Vec<&str> = steps
        .iter()
        .filter_map(|s| s.get("uses").and_then(Value::as_str))
        .collect();
    // Actions pinned by their major tag.
    for action in &uses {
        let (_, tag) = action.split_once('@').unwrap_or((action, ""));
        assert!(
            tag.strip_prefix('v')
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())),
            "`{action}` is not pinned by a major tag"
        );
    }
    let checkout = steps
        .iter()
        .find(|s| {
            s.get("uses")
                .and_then(Value::as_str)
                .is_some_and(|u| u.starts_with("actions/checkout@"))
        })
        .expect("no actions/checkout step");
    assert_eq!(
        checkout["with"]["fetch-depth"],
        Value::from(0),
        "netpol diff reads the base revision with git: check out with fetch-depth 0"
    );
    let script = steps
        .iter()
        .find(|s| {
            s.get("uses")
                .and_then(Value::as_str)
                .is_some_and(|u| u.starts_with("actions/github-script@"))
        })
        .expect("no actions/github-script step");
    let code = script["with"]["script"].as_str().unwrap();
    for call in ["listComments", "updateComment", "createComment"] {
        assert!(code.contains(call), "the comment script never calls {call}");
    }
    assert!(
        text.contains("GITHUB_STEP_SUMMARY"),
        "the report is not written to the job summary"
    );
}

// ---------------------------------------------------------------------------------------------
// pre-commit

#[test]
fn the_pre_commit_hooks_run_command_lines_the_parser_accepts() {
    let manifest = read_yaml(".pre-commit-hooks.yaml");
    let hooks: BTreeMap<&str, &Value> = manifest
        .as_array()
        .expect("a pre-commit manifest is a list of hooks")
        .iter()
        .map(|hook| (hook["id"].as_str().unwrap(), hook))
        .collect();
    let check = hooks.get("netpol-check").expect("no `netpol-check` hook");
    assert_eq!(check["entry"], "netpol check");
    assert_eq!(check["files"], r"^profiles/.*\.ya?ml$");
    for (id, hook) in &hooks {
        assert_eq!(
            hook["pass_filenames"],
            Value::Bool(false),
            "hook `{id}`: netpol reads whole directories, not the files changed"
        );
    }

    // Each hook of the example configuration, with its `args:`, as pre-commit runs it.
    let config = read_yaml("examples/pre-commit-config.yaml");
    let mut used = BTreeSet::new();
    for repo in config["repos"].as_array().unwrap() {
        for hook in repo["hooks"].as_array().unwrap() {
            let id = hook["id"].as_str().unwrap();
            let definition = hooks
                .get(id)
                .unwrap_or_else(|| panic!("the example uses hook `{id}`, which is not defined"));
            let mut argv: Vec<String> = definition["entry"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .map(str::to_string)
                .collect();
            for args in [definition.get("args"), hook.get("args")]
                .into_iter()
                .flatten()
            {
                argv.extend(
                    args.as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap().to_string()),
                );
            }
            assert_eq!(argv.first().map(String::as_str), Some("netpol"), "{argv:?}");
            assert!(assert_parses(&format!("hook `{id}`"), &argv[1..]));
            used.insert(id);
        }
    }
    let defined: BTreeSet<&str> = hooks.keys().copied().collect();
    assert_eq!(used, defined, "the example configuration shows every hook");
}

#[test]
fn the_readme_shows_the_example_pre_commit_configuration() {
    let example =
        std::fs::read_to_string(repo_root().join("examples/pre-commit-config.yaml")).unwrap();
    let body: String = example
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```yaml\n{body}```\n")),
        "README.md does not show examples/pre-commit-config.yaml (its comment lines left out):\n{body}"
    );
}

// ---------------------------------------------------------------------------------------------
// The shell, as far as the examples use it

mod shell {
    //! Splits a script into simple commands and their words, as bash would: quotes, escapes,
    //! line continuations, comments, `$VAR` / `${VAR}` expansion (field splitting when
    //! unquoted), command substitution (its commands are collected too; its value is a
    //! placeholder), redirections (left out of the words) and the operators that separate
    //! commands.

    use std::collections::BTreeMap;

    use super::UNKNOWN;

    pub fn commands(script: &str, env: &BTreeMap<String, String>) -> Vec<Vec<String>> {
        let mut lexer = Lexer {
            chars: script.chars().collect(),
            pos: 0,
            env,
            commands: Vec::new(),
        };
        lexer.script(None);
        lexer.commands
    }

    struct Lexer<'a> {
        chars: Vec<char>,
        pos: usize,
        env: &'a BTreeMap<String, String>,
        commands: Vec<Vec<String>>,
    }

    /// A word being read: its fields (more than one after an unquoted expansion).
    #[derive(Default)]
    struct Word {
        fields: Vec<String>,
        current: String,
        started: bool,
    }

    impl Word {
        fn push(&mut self, c: char) {
            self.current.push(c);
            self.started = true;
        }
        fn push_str(&mut self, s: &str) {
            self.current.push_str(s);
            self.started = true;
        }
        /// An unquoted expansion: split into fields on blanks (an empty value adds nothing).
        fn push_split(&mut self, s: &str) {
            if s.starts_with(char::is_whitespace) && !self.current.is_empty() {
                self.fields.push(std::mem::take(&mut self.current));
            }
            let mut parts = s.split_whitespace().peekable();
            while let Some(part) = parts.next() {
                self.current.push_str(part);
                if parts.peek().is_some() || s.ends_with(char::is_whitespace) {
                    self.fields.push(std::mem::take(&mut self.current));
                }
            }
        }
        fn finish(mut self) -> Vec<String> {
            if !self.current.is_empty() || (self.started && self.fields.is_empty()) {
                self.fields.push(self.current);
            }
            self.fields
        }
    }

    impl Lexer<'_> {
        fn peek(&self) -> Option<char> {
            self.chars.get(self.pos).copied()
        }
        fn peek_at(&self, offset: usize) -> Option<char> {
            self.chars.get(self.pos + offset).copied()
        }

        /// Read commands until the end, or until `close` (the `)` of a command substitution).
        fn script(&mut self, close: Option<char>) {
            let mut command: Vec<String> = Vec::new();
            let mut redirect_target = false;
            while let Some(c) = self.peek() {
                if Some(c) == close {
                    self.pos += 1;
                    break;
                }
                match c {
                    ' ' | '\t' => self.pos += 1,
                    '\\' if self.peek_at(1) == Some('\n') => self.pos += 2,
                    '#' => {
                        while self.peek().is_some_and(|c| c != '\n') {
                            self.pos += 1;
                        }
                    }
                    '\n' | ';' | '&' | '|' | '(' | ')' => {
                        self.pos += 1;
                        if c == '&' && self.peek() == Some('>') {
                            continue;
                        }
                        self.end(&mut command);
                    }
                    '>' | '<' => {
                        self.redirection();
                        redirect_target = true;
                    }
                    _ => {
                        let word = self.word();
                        // `2>` and `2>&1`: the digits before a redirection name a descriptor.
                        if matches!(self.peek(), Some('>' | '<'))
                            && word.iter().all(|w| w.chars().all(|c| c.is_ascii_digit()))
                        {
                            continue;
                        }
                        if redirect_target {
                            redirect_target = false;
                        } else {
                            command.extend(word);
                        }
                    }
                }
            }
            self.end(&mut command);
        }

        fn end(&mut self, command: &mut Vec<String>) {
            if !command.is_empty() {
                self.commands.push(std::mem::take(command));
            }
        }

        /// `>`, `>>`, `<`, `>&` (its target is the next word).
        fn redirection(&mut self) {
            self.pos += 1;
            while matches!(self.peek(), Some('>' | '&')) {
                self.pos += 1;
            }
        }

        /// One word, up to a blank or an operator.
        fn word(&mut self) -> Vec<String> {
            let mut word = Word::default();
            while let Some(c) = self.peek() {
                match c {
                    ' ' | '\t' | '\n' | ';' | '&' | '|' | '(' | ')' | '>' | '<' => break,
                    '\\' => {
                        self.pos += 1;
                        match self.peek() {
                            Some('\n') => self.pos += 1,
                            Some(c) => {
                                word.push(c);
                                self.pos += 1;
                            }
                            None => {}
                        }
                    }
                    '\'' => {
                        self.pos += 1;
                        word.started = true;
                        while let Some(c) = self.peek() {
                            self.pos += 1;
                            if c == '\'' {
                                break;
                            }
                            word.push(c);
                        }
                    }
                    '"' => {
                        self.pos += 1;
                        word.started = true;
                        self.double_quoted(&mut word);
                    }
                    '$' => {
                        let value = self.dollar();
                        word.push_split(&value);
                    }
                    '`' => panic!("backquote command substitution: write $(…)"),
                    _ => {
                        word.push(c);
                        self.pos += 1;
                    }
                }
            }
            word.finish()
        }

        fn double_quoted(&mut self, word: &mut Word) {
            while let Some(c) = self.peek() {
                match c {
                    '"' => {
                        self.pos += 1;
                        return;
                    }
                    '\\' => {
                        self.pos += 1;
                        match self.peek() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => {
                                word.push(e);
                                self.pos += 1;
                            }
                            Some('\n') => self.pos += 1,
                            _ => word.push('\\'),
                        }
                    }
                    '$' => {
                        let value = self.dollar();
                        word.push_str(&value);
                    }
                    '`' => panic!("backquote command substitution: write $(…)"),
                    _ => {
                        word.push(c);
                        self.pos += 1;
                    }
                }
            }
        }

        /// `$NAME`, `${NAME}`, `$?`, `$(…)` (its commands collected, its value a placeholder);
        /// a `$` before anything else is itself.
        fn dollar(&mut self) -> String {
            self.pos += 1;
            match self.peek() {
                Some('(') => {
                    self.pos += 1;
                    self.script(Some(')'));
                    "<output>".to_string()
                }
                Some('{') => {
                    self.pos += 1;
                    let mut name = String::new();
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        if c == '}' {
                            break;
                        }
                        name.push(c);
                    }
                    self.variable(&name)
                }
                Some('?' | '#' | '$' | '!') => {
                    self.pos += 1;
                    "0".to_string()
                }
                Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                    let mut name = String::new();
                    while let Some(c) = self
                        .peek()
                        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    {
                        name.push(c);
                        self.pos += 1;
                    }
                    self.variable(&name)
                }
                _ => "$".to_string(),
            }
        }

        fn variable(&self, name: &str) -> String {
            match self.env.get(name) {
                Some(value) => value.clone(),
                None => format!("{UNKNOWN}{name}"),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn env() -> BTreeMap<String, String> {
            [("A", "x y"), ("B", "b")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }

        #[test]
        fn words_quotes_expansions_and_redirections() {
            let script = "netpol diff \"$A\" $A '$A' ${B}c \\\n  --x \"q\\\"\" > out.md 2> err || s=$?\n\
                          # netpol comment\nif [ -n \"$(netpol check \"$B\")\" ]; then echo 'netpol x'; fi\n\
                          cmd >&2 last";
            let commands = commands(script, &env());
            let expected: Vec<Vec<&str>> = vec![
                vec!["netpol", "diff", "x y", "x", "y", "$A", "bc", "--x", "q\""],
                vec!["s=0"],
                vec!["netpol", "check", "b"],
                vec!["if", "[", "-n", "<output>", "]"],
                vec!["then", "echo", "netpol x"],
                vec!["fi"],
                vec!["cmd", "last"],
            ];
            assert_eq!(commands, expected);
        }

        #[test]
        fn an_unset_variable_is_marked() {
            let commands = commands("netpol check \"$NOPE\"", &env());
            assert!(commands[0][2].starts_with(UNKNOWN));
        }
    }
}
