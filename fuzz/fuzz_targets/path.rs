//! Attribute paths and PATCH paths: never panic, and every error is a 400 `invalidPath`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_proto::path::PatchPath;
use scim_proto::{AttrPath, ScimType};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for result in [AttrPath::parse(text).err(), PatchPath::parse(text).err()].into_iter().flatten() {
        assert_eq!(result.status, 400, "{text:?}: {}", result.detail);
        assert!(
            matches!(result.scim_type, Some(ScimType::InvalidPath | ScimType::InvalidFilter)),
            "{text:?}: {:?}",
            result.scim_type
        );
    }
});
