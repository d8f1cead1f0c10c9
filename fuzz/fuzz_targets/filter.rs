//! The filter parser: never panics, and a filter it accepts prints as text that parses back to
//! the same filter (the doctor and the provisioning log print filters and read them again).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_proto::filter;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(parsed) = filter::parse(text) {
        let printed = parsed.to_string();
        let again = filter::parse_trusted(&printed)
            .unwrap_or_else(|e| panic!("{text:?} parsed, but its printed form {printed:?} does not: {e}"));
        assert_eq!(again, parsed, "{text:?} printed as {printed:?}");
    }
});
