//! `cargo xtask crd-check`: validate Cilium policy YAML against the CRDs' openAPIV3Schema.
//!
//! ```text
//! FILE|DIR|- ──serde-saphyr (multi-document)──> JSON values ──(kind: *List → items)──> objects
//!   object (apiVersion cilium.io/VERSION, kind K) ──> <plural of K>.VERSION.openapi-v3-schema.json
//!   schema ──as the API server reads it (nullable, int-or-string, formats, Go regexes)──> draft 4
//!   object ──prune nulls──> validate ──> `file: object kind/name: /instance/path: message`
//! ```
//!
//! A development tool: the schemas come from `../shared/corpus/cilium-crds/derived` (the CRDs'
//! `openAPIV3Schema` as plain JSON), which only the project's machines have. It checks what
//! netpol emits, and the corpus it learns from, against what a real API server would accept.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read as _, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, ValidationError, Validator};
use serde_json::{Map, Value};

use crate::workspace_root;

/// Where the derived schemas live, relative to the workspace root.
const DEFAULT_CRDS: &str = "../shared/corpus/cilium-crds/derived";
/// `ciliumnetworkpolicies.v2.openapi-v3-schema.json` → plural `ciliumnetworkpolicies`, version `v2`.
const SCHEMA_SUFFIX: &str = ".openapi-v3-schema.json";
/// Where [`to_json_schema`] moves `pattern`: the API server matches patterns with Go's RE2
/// syntax (`^\PC*$`), which JSON Schema's ECMA-262 `pattern` rejects and Rust's `regex` shares.
const GO_PATTERN: &str = "x-netpol-go-pattern";
/// The API group whose kinds have schemas in the derived directory.
const GROUP: &str = "cilium.io";
/// The `format`s the Kubernetes API server checks in CRD schemas; it ignores the others (the
/// CNP schema says `idn-hostname` for `host`, which is a regex, not a hostname).
const CHECKED_FORMATS: &[&str] = &[
    "cidr",
    "date-time",
    "date",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uuid",
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of `<plural>.<version>.openapi-v3-schema.json` files
    /// [default: ../shared/corpus/cilium-crds/derived, from the workspace root]
    #[arg(long, value_name = "DIR")]
    crds: Option<PathBuf>,
    /// Also report fields the schema does not declare, as `kubectl apply` does (the API server
    /// itself drops them silently)
    #[arg(long)]
    strict: bool,
    /// YAML files, or directories searched for *.yaml, *.yml and *.json; `-` reads stdin
    #[arg(required = true, value_name = "FILE|DIR")]
    inputs: Vec<PathBuf>,
}

/// Validates every input; `Ok(false)` when something is invalid (the summary has said so).
pub fn run(args: &Args) -> Result<bool> {
    let dir = match &args.crds {
        Some(dir) => dir.clone(),
        None => workspace_root().join(DEFAULT_CRDS),
    };
    if !dir.is_dir() {
        bail!(
            "no CRD schemas at `{}`; pass `--crds DIR` (the derived openAPIV3Schema JSON files, \
             which come with the project's shared corpus)",
            dir.display()
        );
    }
    let mut schemas = Schemas::load(&dir, args.strict)?;
    let files = input_files(&args.inputs)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut tally = Tally::default();
    for file in &files {
        let (label, text) = if file.as_os_str() == "-" {
            let mut text = String::new();
            io::stdin()
                .read_to_string(&mut text)
                .context("cannot read stdin")?;
            ("<stdin>".to_owned(), text)
        } else {
            let text = fs::read_to_string(file)
                .with_context(|| format!("cannot read `{}`", file.display()))?;
            (file.display().to_string(), text)
        };
        check_text(&text, &label, &mut schemas, &mut out, &mut tally)?;
    }
    tally.summary(&mut out)?;
    Ok(!tally.failed())
}

/// Counts for the summary line.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    valid: usize,
    invalid: usize,
    /// Documents of kinds without a schema (Pods, Services, k8s NetworkPolicies, …).
    skipped: usize,
    unparsable: usize,
}

impl Tally {
    fn failed(&self) -> bool {
        self.invalid > 0 || self.unparsable > 0
    }

    fn summary(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(
            out,
            "{} objects, {} valid, {} invalid",
            self.valid + self.invalid,
            self.valid,
            self.invalid
        )?;
        if self.skipped > 0 {
            writeln!(out, "skipped {} documents of other kinds", self.skipped)?;
        }
        match self.unparsable {
            0 => {}
            1 => writeln!(out, "1 file is not valid YAML")?,
            n => writeln!(out, "{n} files are not valid YAML")?,
        }
        Ok(())
    }
}

/// Files named on the command line, and the YAML/JSON files under named directories (sorted).
fn input_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            collect_yaml(input, &mut files)?;
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

fn collect_yaml(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries = fs::read_dir(dir)
        .with_context(|| format!("cannot list `{}`", dir.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<io::Result<Vec<_>>>()
        .with_context(|| format!("cannot list `{}`", dir.display()))?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_yaml(&path, files)?;
        } else if path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| matches!(ext, "yaml" | "yml" | "json"))
        {
            files.push(path);
        }
    }
    Ok(())
}

/// Checks every object in the YAML stream `text`, writing one line per violation to `out`.
fn check_text(
    text: &str,
    label: &str,
    schemas: &mut Schemas,
    out: &mut impl Write,
    tally: &mut Tally,
) -> Result<()> {
    let documents: Vec<Value> = match serde_saphyr::from_str_multiple(text) {
        Ok(documents) => documents,
        Err(error) => {
            let message = error.to_string();
            let first_line = message.lines().next().unwrap_or_default();
            let first_line = first_line.strip_prefix("error: ").unwrap_or(first_line);
            writeln!(out, "{label}: not valid YAML: {first_line}")?;
            tally.unparsable += 1;
            return Ok(());
        }
    };
    for document in &documents {
        for object in objects(document) {
            check_object(object, label, schemas, out, tally)?;
        }
    }
    Ok(())
}

/// The objects in one document: the document itself, or the items of a `List` / `*List`.
pub fn objects(document: &Value) -> Vec<&Value> {
    let is_list = document
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.ends_with("List"));
    match document.get("items").and_then(Value::as_array) {
        Some(items) if is_list => items.iter().flat_map(objects).collect(),
        _ => vec![document],
    }
}

fn check_object(
    object: &Value,
    label: &str,
    schemas: &mut Schemas,
    out: &mut impl Write,
    tally: &mut Tally,
) -> Result<()> {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<no name>");
    match schemas.violations(object)? {
        None => tally.skipped += 1,
        Some(errors) if errors.is_empty() => tally.valid += 1,
        Some(errors) => {
            tally.invalid += 1;
            for (path, message) in errors {
                writeln!(out, "{label}: object {kind}/{name}: {path}: {message}")?;
            }
        }
    }
    Ok(())
}

/// Kubernetes' plural resource name of a kind: `CiliumNetworkPolicy` → `ciliumnetworkpolicies`.
fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match lower.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{lower}s"),
    }
}

/// The derived schema files, by plural and version, compiled on first use.
#[derive(Debug)]
pub struct Schemas {
    files: BTreeMap<String, BTreeMap<String, SchemaFile>>,
}

#[derive(Debug)]
enum SchemaFile {
    Unloaded { path: PathBuf, strict: bool },
    Loaded(Box<Compiled>),
}

#[derive(Debug)]
struct Compiled {
    /// The schema as compiled (after [`to_json_schema`]); error messages look into it.
    schema: Value,
    validator: Validator,
}

impl Schemas {
    /// The schema violations of one object as `(path, message)`, sorted; `None` for kinds
    /// without a schema.
    pub fn violations(&mut self, object: &Value) -> Result<Option<Vec<(String, String)>>> {
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let Some(versions) = self.files.get_mut(&plural(kind)) else {
            return Ok(None);
        };
        let Some(schema) = versions.get_mut(version).filter(|_| group == GROUP) else {
            let known: Vec<String> = versions.keys().map(|v| format!("{GROUP}/{v}")).collect();
            return Ok(Some(vec![(
                "/apiVersion".to_owned(),
                format!(
                    "no schema for `{api_version}` (known: {})",
                    known.join(", ")
                ),
            )]));
        };
        let schema = schema.load()?;
        let mut instance = object.clone();
        prune_nulls(&mut instance, &schema.schema);
        let mut errors: Vec<ValidationError<'_>> =
            schema.validator.iter_errors(&instance).collect();
        errors.sort_by(|a, b| a.instance_path().as_str().cmp(b.instance_path().as_str()));
        Ok(Some(
            errors
                .iter()
                .map(|error| {
                    let path = error.instance_path().as_str();
                    let path = if path.is_empty() { "/" } else { path };
                    (path.to_owned(), describe(error, &schema.schema))
                })
                .collect(),
        ))
    }

    pub fn load(dir: &Path, strict: bool) -> Result<Self> {
        let mut files: BTreeMap<String, BTreeMap<String, SchemaFile>> = BTreeMap::new();
        for entry in
            fs::read_dir(dir).with_context(|| format!("cannot list `{}`", dir.display()))?
        {
            let path = entry
                .with_context(|| format!("cannot list `{}`", dir.display()))?
                .path();
            let Some(stem) = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_suffix(SCHEMA_SUFFIX))
            else {
                continue;
            };
            let Some((plural, version)) = stem.rsplit_once('.') else {
                continue;
            };
            files
                .entry(plural.to_owned())
                .or_default()
                .insert(version.to_owned(), SchemaFile::Unloaded { path, strict });
        }
        if files.is_empty() {
            bail!(
                "no `*{SCHEMA_SUFFIX}` files in `{}`; expected e.g. \
                 `ciliumnetworkpolicies.v2{SCHEMA_SUFFIX}`",
                dir.display()
            );
        }
        Ok(Self { files })
    }

    #[cfg(test)]
    fn from_values(schemas: Vec<(&str, &str, Value)>, strict: bool) -> Result<Self> {
        let mut files: BTreeMap<String, BTreeMap<String, SchemaFile>> = BTreeMap::new();
        for (plural, version, schema) in schemas {
            files.entry(plural.to_owned()).or_default().insert(
                version.to_owned(),
                SchemaFile::Loaded(Box::new(Compiled::new(schema, strict)?)),
            );
        }
        Ok(Self { files })
    }
}

impl SchemaFile {
    fn load(&mut self) -> Result<&Compiled> {
        if let Self::Unloaded { path, strict } = self {
            let text = fs::read_to_string(&*path)
                .with_context(|| format!("cannot read `{}`", path.display()))?;
            let schema: Value = serde_json::from_str(&text)
                .with_context(|| format!("`{}` is not JSON", path.display()))?;
            let compiled = Compiled::new(schema, *strict)
                .with_context(|| format!("cannot compile `{}`", path.display()))?;
            *self = Self::Loaded(Box::new(compiled));
        }
        match self {
            Self::Loaded(compiled) => Ok(compiled),
            Self::Unloaded { path, .. } => bail!("`{}` was not loaded", path.display()),
        }
    }
}

impl Compiled {
    fn new(mut schema: Value, strict: bool) -> Result<Self> {
        to_json_schema(&mut schema, strict);
        // OpenAPI 3.0 schema objects are a dialect of draft 4 (boolean exclusiveMinimum, no
        // `const`); keywords draft 4 does not know (`x-kubernetes-*`, `nullable`) are ignored.
        let validator = jsonschema::options()
            .with_draft(Draft::Draft4)
            .should_validate_formats(true)
            .with_format("cidr", is_cidr)
            .with_keyword(GO_PATTERN, GoPattern::compile)
            .build(&schema)
            .map_err(|error| anyhow::anyhow!("{error}"))?;
        Ok(Self { schema, validator })
    }
}

/// Rewrites a Kubernetes structural schema into the JSON Schema the API server effectively
/// applies: `nullable: true` admits null, `x-kubernetes-int-or-string` admits both, formats the
/// server does not check are dropped, patterns are Go regexes, and (`strict`) undeclared fields
/// are rejected.
fn to_json_schema(schema: &mut Value, strict: bool) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    if object.get("nullable") == Some(&Value::Bool(true)) {
        match object.get_mut("type") {
            Some(Value::String(single)) => {
                let single = Value::String(std::mem::take(single));
                object.insert("type".to_owned(), Value::from(vec![single, "null".into()]));
            }
            Some(Value::Array(types)) => types.push("null".into()),
            _ => {}
        }
        if let Some(Value::Array(values)) = object.get_mut("enum") {
            values.push(Value::Null);
        }
    }
    if object.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        && !object.contains_key("type")
        && !object.contains_key("anyOf")
    {
        object.insert("type".to_owned(), Value::from(vec!["integer", "string"]));
    }
    let unchecked_format = object
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|format| !CHECKED_FORMATS.contains(&format));
    if unchecked_format {
        object.remove("format");
    }
    if let Some(pattern) = object.remove("pattern") {
        object.insert(GO_PATTERN.to_owned(), pattern);
    }
    let preserves_unknown =
        object.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if strict
        && !preserves_unknown
        && object.get("type").and_then(Value::as_str) == Some("object")
        && object.contains_key("properties")
        && !object.contains_key("additionalProperties")
    {
        object.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
    for (keyword, value) in object.iter_mut() {
        match (keyword.as_str(), value) {
            ("properties" | "patternProperties" | "definitions", Value::Object(children)) => {
                for child in children.values_mut() {
                    to_json_schema(child, strict);
                }
            }
            ("items" | "anyOf" | "oneOf" | "allOf", Value::Array(children)) => {
                for child in children {
                    to_json_schema(child, strict);
                }
            }
            ("items" | "additionalProperties" | "not", child @ Value::Object(_)) => {
                to_json_schema(child, strict);
            }
            _ => {}
        }
    }
}

/// `pattern` with Go's regexp semantics (RE2 syntax, unanchored), as the API server applies it.
struct GoPattern {
    regex: regex::Regex,
}

impl GoPattern {
    fn compile<'a>(
        _parent: &'a Map<String, Value>,
        pattern: &'a Value,
        _path: jsonschema::paths::Location,
    ) -> Result<Box<dyn for<'i> jsonschema::Keyword<'i>>, ValidationError<'a>> {
        let Some(text) = pattern.as_str() else {
            return Err(ValidationError::schema("`pattern` must be a string"));
        };
        let regex = regex::Regex::new(text)
            .map_err(|error| ValidationError::schema(format!("bad pattern `{text}`: {error}")))?;
        Ok(Box::new(Self { regex }))
    }
}

impl<'i> jsonschema::Keyword<'i> for GoPattern {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if self.is_valid(instance) {
            return Ok(());
        }
        Err(ValidationError::custom(format!(
            "{instance} does not match \"{}\"",
            self.regex.as_str()
        )))
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        instance
            .as_str()
            .is_none_or(|text| self.regex.is_match(text))
    }
}

/// Drops `field: null` where the schema does not say `nullable`, as the API server does before
/// it validates (so `ingress: null` means "no ingress", not "ingress must be an array").
fn prune_nulls(instance: &mut Value, schema: &Value) {
    match instance {
        Value::Object(fields) => {
            fields.retain(|key, value| !value.is_null() || is_nullable(field_schema(schema, key)));
            for (key, value) in fields.iter_mut() {
                if let Some(child) = field_schema(schema, key) {
                    prune_nulls(value, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(child) = schema.get("items") {
                for item in items {
                    prune_nulls(item, child);
                }
            }
        }
        _ => {}
    }
}

fn field_schema<'s>(schema: &'s Value, key: &str) -> Option<&'s Value> {
    schema
        .get("properties")
        .and_then(|properties| properties.get(key))
        .or_else(|| schema.get("additionalProperties").filter(|s| s.is_object()))
}

fn is_nullable(schema: Option<&Value>) -> bool {
    schema.and_then(|schema| schema.get("nullable")) == Some(&Value::Bool(true))
}

/// Go's `net.ParseCIDR`, which the API server uses for `format: cidr`: `ADDRESS/PREFIX`.
fn is_cidr(text: &str) -> bool {
    let Some((address, prefix)) = text.split_once('/') else {
        return false;
    };
    let Ok(address) = address.parse::<IpAddr>() else {
        return false;
    };
    let bits = if address.is_ipv4() { 32 } else { 128 };
    !prefix.is_empty()
        && prefix.len() <= 3
        && prefix.bytes().all(|byte| byte.is_ascii_digit())
        && prefix.parse::<u8>().is_ok_and(|prefix| prefix <= bits)
}

/// One line about one violation, short enough to read in a terminal.
///
/// `oneOf`/`anyOf` over `required` branches (how Cilium says "exactly one of endpointSelector and
/// nodeSelector") are named by their fields; big objects are not echoed back.
fn describe(error: &ValidationError<'_>, schema: &Value) -> String {
    let branches = || {
        schema
            .pointer(error.schema_path().as_str())
            .and_then(required_fields_of_branches)
    };
    match error.kind() {
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => {
            if let Some(fields) = branches() {
                let quantity = if matches!(error.kind(), ValidationErrorKind::AnyOf { .. }) {
                    "at least"
                } else {
                    "exactly"
                };
                return format!("needs {quantity} one of {fields}");
            }
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            if let Some(fields) = branches() {
                return format!("has more than one of {fields}; exactly one is allowed");
            }
        }
        ValidationErrorKind::Enum { options } => {
            if let Some(options) = options.as_array().filter(|options| options.len() <= 12) {
                let options: Vec<String> = options.iter().map(Value::to_string).collect();
                return format!("{} is not one of {}", error.instance(), options.join(", "));
            }
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let fields: Vec<String> = unexpected
                .iter()
                .map(|field| format!("`{field}`"))
                .collect();
            return format!("unknown field {}", fields.join(", "));
        }
        _ => {}
    }
    let instance = error.instance();
    let short_scalar =
        !instance.is_object() && !instance.is_array() && instance.to_string().chars().count() <= 80;
    if short_scalar {
        error.to_string()
    } else {
        let placeholder = if instance.is_object() {
            "object"
        } else if instance.is_array() {
            "array"
        } else {
            "value"
        };
        error.masked_with(placeholder).to_string()
    }
}

/// For `[{required: [a]}, {required: [b, c]}]`: "`a`, `b` and `c`" style text, one entry per
/// branch (`` `b` + `c` `` when a branch needs several).
fn required_fields_of_branches(branches: &Value) -> Option<String> {
    let branches = branches.as_array()?;
    let mut names = Vec::new();
    for branch in branches {
        let branch: &Map<String, Value> = branch.as_object()?;
        if branch
            .keys()
            .any(|key| !matches!(key.as_str(), "required" | "properties" | "description"))
        {
            return None;
        }
        let required: Vec<String> = branch
            .get("required")?
            .as_array()?
            .iter()
            .map(|field| field.as_str().map(|field| format!("`{field}`")))
            .collect::<Option<_>>()?;
        names.push(required.join(" + "));
    }
    (!names.is_empty()).then(|| names.join(", "))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    /// A cut-down CiliumNetworkPolicy schema with the shapes the real one uses.
    fn cnp_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "oneOf": [
                        {"properties": {"endpointSelector": {}}, "required": ["endpointSelector"]},
                        {"properties": {"nodeSelector": {}}, "required": ["nodeSelector"]}
                    ],
                    "anyOf": [
                        {"properties": {"ingress": {}}, "required": ["ingress"]},
                        {"properties": {"egress": {}}, "required": ["egress"]}
                    ],
                    "properties": {
                        "endpointSelector": {"type": "object", "x-kubernetes-map-type": "atomic"},
                        "nodeSelector": {"type": "object"},
                        "description": {"type": "string", "nullable": true},
                        "ingress": {"type": "array", "items": {"type": "object"}},
                        "egress": {
                            "type": "array",
                            "x-kubernetes-list-type": "atomic",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "toCIDR": {
                                        "type": "array",
                                        "items": {"type": "string", "format": "cidr"}
                                    },
                                    "host": {"type": "string", "format": "idn-hostname"},
                                    "port": {"x-kubernetes-int-or-string": true},
                                    "protocol": {"type": "string", "enum": ["TCP", "UDP"]}
                                }
                            }
                        }
                    }
                }
            }
        })
    }

    fn check(yaml: &str, strict: bool) -> (String, Tally) {
        let mut schemas =
            Schemas::from_values(vec![("ciliumnetworkpolicies", "v2", cnp_schema())], strict)
                .unwrap();
        let mut out = Vec::new();
        let mut tally = Tally::default();
        check_text(yaml, "p.yaml", &mut schemas, &mut out, &mut tally).unwrap();
        (String::from_utf8(out).unwrap(), tally)
    }

    const VALID: &str = "\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web}
spec:
  description: null
  endpointSelector: {matchLabels: {app: web}}
  ingress: null
  egress:
  - toCIDR: [10.0.0.0/8, 2001:db8::/32]
    host: 'foo\\.bar\\.com'
    port: 80
  - port: http
";

    #[test]
    fn a_valid_policy_passes_with_k8s_nulls_int_or_string_and_regex_hosts() {
        let (out, tally) = check(VALID, true);
        assert_eq!(out, "");
        assert_eq!(
            tally,
            Tally {
                valid: 1,
                ..Tally::default()
            }
        );
    }

    #[test]
    fn violations_name_the_object_and_the_path() {
        let yaml = "\
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: broken}
spec:
  endpointSelector: {}
  nodeSelector: {}
  egress:
  - toCIDR: [10.0.0.1, 10.0.0.0/33]
    port: [80]
    protocol: TCPX
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: empty}
spec: {}
";
        let (out, tally) = check(yaml, false);
        assert_eq!(
            out,
            "\
p.yaml: object CiliumNetworkPolicy/broken: /spec: has more than one of `endpointSelector`, `nodeSelector`; exactly one is allowed
p.yaml: object CiliumNetworkPolicy/broken: /spec/egress/0/port: array is not of types \"integer\", \"string\"
p.yaml: object CiliumNetworkPolicy/broken: /spec/egress/0/protocol: \"TCPX\" is not one of \"TCP\", \"UDP\"
p.yaml: object CiliumNetworkPolicy/broken: /spec/egress/0/toCIDR/0: \"10.0.0.1\" is not a \"cidr\"
p.yaml: object CiliumNetworkPolicy/broken: /spec/egress/0/toCIDR/1: \"10.0.0.0/33\" is not a \"cidr\"
p.yaml: object CiliumNetworkPolicy/empty: /spec: needs at least one of `ingress`, `egress`
p.yaml: object CiliumNetworkPolicy/empty: /spec: needs exactly one of `endpointSelector`, `nodeSelector`
"
        );
        assert_eq!(
            tally,
            Tally {
                invalid: 2,
                ..Tally::default()
            }
        );
    }

    #[test]
    fn strict_mode_reports_undeclared_fields() {
        let yaml = VALID.replace("  egress:\n", "  egres: []\n  egress:\n");
        let (out, _) = check(&yaml, false);
        assert_eq!(out, "");
        let (out, tally) = check(&yaml, true);
        assert_eq!(
            out,
            "p.yaml: object CiliumNetworkPolicy/web: /spec: unknown field `egres`\n"
        );
        assert_eq!(tally.invalid, 1);
    }

    #[test]
    fn lists_are_expanded_and_other_kinds_skipped() {
        let yaml = format!(
            "kind: List\napiVersion: v1\nitems:\n- {}\n- {{apiVersion: v1, kind: Pod}}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n",
            serde_json::to_string(&serde_saphyr::from_str::<Value>(VALID).unwrap()).unwrap()
        );
        let (out, tally) = check(&yaml, true);
        assert_eq!(out, "");
        assert_eq!(
            tally,
            Tally {
                valid: 1,
                skipped: 2,
                ..Tally::default()
            }
        );
    }

    #[test]
    fn an_unknown_api_version_is_invalid() {
        let yaml = VALID.replace("cilium.io/v2", "cilium.io/v3");
        let (out, tally) = check(&yaml, true);
        assert_eq!(
            out,
            "p.yaml: object CiliumNetworkPolicy/web: /apiVersion: no schema for `cilium.io/v3` \
             (known: cilium.io/v2)\n"
        );
        assert_eq!(tally.invalid, 1);
        let yaml = VALID.replace("apiVersion: cilium.io/v2\n", "");
        let (out, _) = check(&yaml, true);
        assert_eq!(
            out,
            "p.yaml: object CiliumNetworkPolicy/web: /apiVersion: no schema for `` \
             (known: cilium.io/v2)\n"
        );
    }

    #[test]
    fn broken_yaml_is_counted_and_reported() {
        let (out, tally) = check("spec: [unclosed\n", true);
        assert!(out.starts_with("p.yaml: not valid YAML: "), "{out}");
        assert_eq!(tally.unparsable, 1);
        assert!(tally.failed());
    }

    #[test]
    fn plurals_follow_kubernetes() {
        assert_eq!(plural("CiliumNetworkPolicy"), "ciliumnetworkpolicies");
        assert_eq!(
            plural("CiliumClusterwideNetworkPolicy"),
            "ciliumclusterwidenetworkpolicies"
        );
        assert_eq!(plural("CiliumCIDRGroup"), "ciliumcidrgroups");
    }

    #[test]
    fn cidrs_are_parsed_like_go() {
        for good in [
            "10.0.0.0/8",
            "0.0.0.0/0",
            "10.1.2.3/32",
            "::/0",
            "2001:db8::/128",
        ] {
            assert!(is_cidr(good), "{good}");
        }
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "x/8",
        ] {
            assert!(!is_cidr(bad), "{bad}");
        }
    }

    /// The real schemas from the shared corpus, when this machine has it (CI and developers do).
    #[test]
    fn cilium_examples_validate_against_the_real_crds() {
        let root = workspace_root().join("../shared/corpus");
        let crds = root.join("cilium-crds/derived");
        let examples = root.join("cilium-examples/examples/policies");
        if !crds.is_dir() || !examples.is_dir() {
            eprintln!("skipped: no shared corpus at `{}`", root.display());
            return;
        }
        let files = input_files(&[examples]).unwrap();
        let check_all = |strict| {
            let mut schemas = Schemas::load(&crds, strict).unwrap();
            let mut out = Vec::new();
            let mut tally = Tally::default();
            for file in &files {
                let text = fs::read_to_string(file).unwrap();
                let label = file.file_name().unwrap().to_string_lossy().into_owned();
                check_text(&text, &label, &mut schemas, &mut out, &mut tally).unwrap();
            }
            (String::from_utf8(out).unwrap(), tally)
        };
        let (out, tally) = check_all(false);
        assert_eq!(out, "");
        assert!(tally.valid > 50, "{tally:?}");
        assert_eq!(tally.invalid, 0);
        // The API server drops these fields silently; `--strict` shows that 1.19 removed them.
        let (out, _) = check_all(true);
        assert_eq!(
            out,
            "auth.yaml: object CiliumNetworkPolicy/l3-egress-rule: /spec/egress/0: \
             unknown field `auth`\n\
             requires.yaml: object CiliumNetworkPolicy/requires-rule: /specs/0/ingress/0: \
             unknown field `fromRequires`\n"
        );
    }
}
