//! `netpol schema`: the JSON Schema of the profile format, for editors.

use super::{Output, Status};

pub(super) fn run(out: &mut Output<'_>) -> Status {
    out.write(crate::profile::schema::PROFILE_SCHEMA)
}
