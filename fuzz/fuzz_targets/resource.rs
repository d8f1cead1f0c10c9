//! Resource parsing (`prepare`): any JSON body as a User and as a Group. Never panics; every
//! refusal is a 4xx; an accepted resource is canonical (preparing it again changes nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_proto::ResourceKind;
use scim_proto::resource::prepare;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    for kind in [ResourceKind::User, ResourceKind::Group] {
        match prepare(kind, body.clone()) {
            Ok(canonical) => {
                let again = prepare(kind, canonical.clone());
                assert_eq!(again.as_ref().ok(), Some(&canonical), "{kind:?}: {body} is not a fixed point: {again:?}");
            }
            Err(e) => assert!((400..500).contains(&e.status), "{kind:?}: {body} -> {}", e.status),
        }
    }
});
