//! The JSON Schema of the profile format, for editors (`netpol schema`).
//!
//! Profiles point at it with `# yaml-language-server: $schema=...`; a test validates the
//! repository's own profiles against it, so it cannot drift from the language.

/// The schema (JSON Schema draft 2020-12).
pub const PROFILE_SCHEMA: &str = include_str!("../../schema/profile.schema.json");
