//! PATCH: any JSON body, parsed and applied to a real user. Never panics; a PATCH that fails
//! leaves the resource exactly as it was; one that succeeds leaves a resource that `prepare`
//! accepts unchanged (what is stored is always canonical).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_proto::ResourceKind;
use scim_proto::patch::PatchRequest;
use scim_proto::resource::prepare;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else { return };
    let Ok(request) = PatchRequest::parse(body) else { return };
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": "bjensen",
        "name": { "givenName": "Barbara", "familyName": "Jensen" },
        "emails": [{ "value": "bjensen@example.com", "type": "work", "primary": true }, { "value": "b@home.example" }],
        "active": true,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "Sales", "manager": { "value": "m1" } },
    });
    let original = prepare(ResourceKind::User, user).expect("the starting user is valid");
    let mut patched = original.clone();
    match request.apply(&mut patched, ResourceKind::User) {
        Err(_) => assert_eq!(patched, original, "a failed PATCH changed the resource"),
        Ok(()) => {
            if let Ok(canonical) = prepare(ResourceKind::User, patched.clone()) {
                assert_eq!(prepare(ResourceKind::User, canonical.clone()).ok(), Some(canonical));
            }
        }
    }
});
