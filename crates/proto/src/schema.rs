//! Schemas and resource types (RFC 7643 §2, §6, §7), loaded from the RFC's own JSON definitions.
//!
//! The definitions in `schemas/*.json` are RFC 7643 §8.7 with its errata applied; `/Schemas`
//! serves them as they are, and every rule that depends on an attribute's characteristics
//! (type, mutability, returned, caseExact, uniqueness) reads them from here.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::path::AttrPath;

/// URN of the core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// URN of the enterprise User extension.
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// URN of scimd's read-only provisioning extension of User (state, profile, region).
pub const PROVISIONING_SCHEMA: &str = "urn:scimd:params:scim:schemas:extension:provisioning:1.0:User";
/// URN of the core Group schema.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// URN of the ListResponse message.
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// URN of the PatchOp message.
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// URN of the SearchRequest message.
pub const SEARCH_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// URN of the BulkRequest message.
pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// URN of the BulkResponse message.
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// The data type of an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttrType {
    /// A Unicode string (`"string"`).
    String,
    /// `true` or `false` (`"boolean"`).
    Boolean,
    /// A number with an optional fraction (`"decimal"`).
    Decimal,
    /// A whole number (`"integer"`).
    Integer,
    /// An RFC 3339 timestamp string (`"dateTime"`).
    DateTime,
    /// Base64-encoded bytes (`"binary"`).
    Binary,
    /// A URI referring to a resource or an external location (`"reference"`).
    Reference,
    /// An object of sub-attributes (`"complex"`).
    Complex,
}

/// When an attribute may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    /// Set by the server only; clients' values are ignored.
    ReadOnly,
    /// Clients may set and change it.
    ReadWrite,
    /// Clients may set it once; it cannot change afterwards.
    Immutable,
    /// Clients may set it, but it is never returned (passwords).
    WriteOnly,
}

/// When an attribute is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    /// In every response, whatever `attributes` / `excludedAttributes` say.
    Always,
    /// In no response.
    Never,
    /// Unless excluded by `excludedAttributes` or left out of `attributes`.
    Default,
    /// Only when named in `attributes`.
    Request,
}

/// How unique an attribute's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Uniqueness {
    /// Values need not be unique.
    None,
    /// Unique within the service provider.
    Server,
    /// Globally unique.
    Global,
}

/// One attribute definition (RFC 7643 §7).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttributeDef {
    /// The attribute's name, spelled as the schema spells it (`userName`).
    pub name: String,
    /// The data type (`type` in the JSON definition).
    #[serde(rename = "type")]
    pub kind: AttrType,
    /// Whether the attribute holds an array of values.
    pub multi_valued: bool,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Whether a resource must have a value for it.
    pub required: bool,
    /// Suggested values (`work`, `home`, ...); not enforced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canonical_values: Vec<String>,
    /// Whether string values compare case-sensitively.
    #[serde(default)]
    pub case_exact: bool,
    /// When the attribute may be written.
    pub mutability: Mutability,
    /// When the attribute is returned.
    pub returned: Returned,
    /// How unique its values are.
    #[serde(default = "uniqueness_none")]
    pub uniqueness: Uniqueness,
    /// For references, the resource types or kinds (`User`, `external`, `uri`) referred to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_types: Vec<String>,
    /// For complex attributes, the sub-attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_attributes: Vec<AttributeDef>,
}

fn uniqueness_none() -> Uniqueness {
    Uniqueness::None
}

impl AttributeDef {
    /// The sub-attribute called `name`, compared case-insensitively.
    pub fn sub_attribute(&self, name: &str) -> Option<&AttributeDef> {
        find(&self.sub_attributes, name)
    }
}

/// A schema (RFC 7643 §7): an id (URN) and its attributes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Schema {
    /// The schema URN (`urn:ietf:params:scim:schemas:core:2.0:User`).
    pub id: String,
    /// Human-readable name (`User`).
    pub name: String,
    /// Human-readable description.
    #[serde(default)]
    pub description: String,
    /// The top-level attributes.
    pub attributes: Vec<AttributeDef>,
}

impl Schema {
    /// The top-level attribute called `name`, compared case-insensitively.
    pub fn attribute(&self, name: &str) -> Option<&AttributeDef> {
        find(&self.attributes, name)
    }

    /// The schema as served by `/Schemas/{id}`, without `meta` (the server adds it).
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.insert("schemas".into(), Value::from(vec!["urn:ietf:params:scim:schemas:core:2.0:Schema"]));
        }
        v
    }
}

fn find<'a>(attrs: &'a [AttributeDef], name: &str) -> Option<&'a AttributeDef> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

/// The two resource types scimd serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// A User (`/Users`).
    User,
    /// A Group (`/Groups`).
    Group,
}

impl ResourceKind {
    /// The resource type's name (`User`, `Group`), as in `meta.resourceType`.
    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::User => "User",
            ResourceKind::Group => "Group",
        }
    }

    /// The resource type called `name`, exactly `User` or `Group` (as [`ResourceKind::name`]
    /// spells it); `None` for anything else.
    pub fn from_name(name: &str) -> Option<ResourceKind> {
        match name {
            "User" => Some(ResourceKind::User),
            "Group" => Some(ResourceKind::Group),
            _ => None,
        }
    }

    /// The endpoint below the base URL (`/Users`, `/Groups`).
    pub fn endpoint(self) -> &'static str {
        match self {
            ResourceKind::User => "/Users",
            ResourceKind::Group => "/Groups",
        }
    }

    /// The resource type with its schemas.
    pub fn resource_type(self) -> &'static ResourceType {
        match self {
            ResourceKind::User => &USER_TYPE,
            ResourceKind::Group => &GROUP_TYPE,
        }
    }
}

/// A resource type (RFC 7643 §6): a core schema and its extensions.
#[derive(Debug)]
pub struct ResourceType {
    /// Which resource type this is.
    pub kind: ResourceKind,
    /// Human-readable description, as `/ResourceTypes` serves it.
    pub description: &'static str,
    /// The core schema.
    pub core: Schema,
    /// Extension schemas and whether each is required.
    pub extensions: Vec<(Schema, bool)>,
}

/// Where a path leads in a resource type: the schema that defines it, and the definitions.
#[derive(Debug, Clone, Copy)]
pub struct Resolved<'a> {
    /// The schema that defines the attribute.
    pub schema: &'a Schema,
    /// True when the schema is an extension (its attributes live under the URN key).
    pub in_extension: bool,
    /// The top-level attribute.
    pub attr: &'a AttributeDef,
    /// The sub-attribute, when the path names one.
    pub sub: Option<&'a AttributeDef>,
}

impl<'a> Resolved<'a> {
    /// The definition the path ends at.
    pub fn leaf(&self) -> &'a AttributeDef {
        self.sub.unwrap_or(self.attr)
    }
}

impl ResourceType {
    /// Every schema of the type, core first.
    pub fn schemas(&self) -> impl Iterator<Item = &Schema> {
        std::iter::once(&self.core).chain(self.extensions.iter().map(|(s, _)| s))
    }

    /// The schema with this URN (case-insensitive), core or extension.
    pub fn schema(&self, urn: &str) -> Option<&Schema> {
        self.schemas().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// The extension schema with this URN, if `urn` names one.
    pub fn extension(&self, urn: &str) -> Option<&Schema> {
        self.extensions.iter().map(|(s, _)| s).find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Resolves a path to its definitions. The common attributes (`id`, `externalId`, `meta`)
    /// come first, then the core schema, then the extensions, so `employeeNumber` finds the
    /// enterprise attribute. A common attribute resolves to the core schema (it lives at the top
    /// level of the resource). Returns `None` for attributes no schema defines.
    pub fn resolve(&self, path: &AttrPath) -> Option<Resolved<'_>> {
        let is_core = path.schema.as_deref().is_none_or(|urn| urn.eq_ignore_ascii_case(&self.core.id));
        let (schema, in_extension, attr) = match find(common_attributes(), &path.name) {
            Some(common) if is_core => (&self.core, false, common),
            _ => {
                let (schema, in_extension) = match &path.schema {
                    Some(urn) => {
                        let s = self.schema(urn)?;
                        (s, !s.id.eq_ignore_ascii_case(&self.core.id))
                    }
                    None => {
                        if self.core.attribute(&path.name).is_some() {
                            (&self.core, false)
                        } else {
                            let mut ext = self.extensions.iter().map(|(s, _)| s);
                            (ext.find(|s| s.attribute(&path.name).is_some())?, true)
                        }
                    }
                };
                (schema, in_extension, schema.attribute(&path.name)?)
            }
        };
        let sub = match &path.sub {
            Some(name) => Some(attr.sub_attribute(name)?),
            None => None,
        };
        Some(Resolved { schema, in_extension, attr, sub })
    }

    /// The resource type as served by `/ResourceTypes/{name}`, without `meta`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.kind.name(),
            "name": self.kind.name(),
            "endpoint": self.kind.endpoint(),
            "description": self.description,
            "schema": self.core.id,
            // scimd's own read-only extension is served in /Schemas and returned when asked for by
            // name, but not declared here: clients that build models from resource types would
            // otherwise try to write it.
            "schemaExtensions": self.extensions.iter().filter(|(s, _)| s.id != PROVISIONING_SCHEMA).map(|(s, required)| serde_json::json!({
                "schema": s.id, "required": required,
            })).collect::<Vec<_>>(),
        })
    }
}

fn load(json: &str) -> Schema {
    // The definitions are compiled in and checked by the tests below.
    serde_json::from_str(json).unwrap_or_else(|e| panic!("built-in schema is invalid: {e}"))
}

static USER_TYPE: LazyLock<ResourceType> = LazyLock::new(|| ResourceType {
    kind: ResourceKind::User,
    description: "User Account",
    core: load(include_str!("../schemas/User.json")),
    extensions: vec![
        (load(include_str!("../schemas/EnterpriseUser.json")), false),
        (load(include_str!("../schemas/ScimdProvisioning.json")), false),
    ],
});

static GROUP_TYPE: LazyLock<ResourceType> = LazyLock::new(|| ResourceType {
    kind: ResourceKind::Group,
    description: "Group",
    core: load(include_str!("../schemas/Group.json")),
    extensions: vec![],
});

/// The common attributes of every resource (RFC 7643 §3.1): `id`, `externalId` and `meta`.
///
/// They belong to no schema and so are not listed by `/Schemas`, but [`ResourceType::resolve`]
/// finds them first, so their characteristics (`id` is readOnly and returned always, `meta` is
/// readOnly) drive validation and projection like any other attribute's.
pub fn common_attributes() -> &'static [AttributeDef] {
    &COMMON_ATTRIBUTES
}

static COMMON_ATTRIBUTES: LazyLock<Vec<AttributeDef>> = LazyLock::new(|| {
    // Compiled in and checked by the tests below, like the schemas.
    serde_json::from_str(include_str!("../schemas/common-attributes.json"))
        .unwrap_or_else(|e| panic!("built-in common attributes are invalid: {e}"))
});

/// Every schema scimd serves, for `/Schemas`.
pub fn all_schemas() -> impl Iterator<Item = &'static Schema> {
    USER_TYPE.schemas().chain(GROUP_TYPE.schemas())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_schemas_load_and_resolve() {
        let user = ResourceKind::User.resource_type();
        assert_eq!(user.core.id, USER_SCHEMA);
        let r = user.resolve(&AttrPath::parse("USERNAME").unwrap()).unwrap();
        assert!(!r.leaf().case_exact);
        assert_eq!(r.leaf().uniqueness, Uniqueness::Server);
        let r = user.resolve(&AttrPath::parse("emails.value").unwrap()).unwrap();
        assert_eq!(r.attr.name, "emails");
        let r = user.resolve(&AttrPath::parse(&format!("{ENTERPRISE_USER_SCHEMA}:manager.value")).unwrap()).unwrap();
        assert!(r.in_extension);
        assert_eq!(r.leaf().name, "value");
        let r = user.resolve(&AttrPath::parse("employeeNumber").unwrap()).unwrap();
        assert!(r.in_extension);
        assert!(user.resolve(&AttrPath::parse("company").unwrap()).is_none());
        let pw = user.resolve(&AttrPath::parse("password").unwrap()).unwrap();
        assert_eq!(pw.attr.returned, Returned::Never);
        let group = ResourceKind::Group.resource_type();
        assert!(group.resolve(&AttrPath::parse("members.value").unwrap()).is_some());
        let id = user.resolve(&AttrPath::parse("id").unwrap()).unwrap();
        assert_eq!((id.attr.mutability, id.attr.returned), (Mutability::ReadOnly, Returned::Always));
        assert!(id.attr.case_exact && !id.in_extension);
        let ext_id = group.resolve(&AttrPath::parse(&format!("{GROUP_SCHEMA}:externalId")).unwrap()).unwrap();
        assert!(ext_id.attr.case_exact);
        let modified = user.resolve(&AttrPath::parse("meta.lastModified").unwrap()).unwrap();
        assert_eq!(modified.leaf().kind, AttrType::DateTime);
        let members = group.resolve(&AttrPath::parse("members.display").unwrap()).unwrap();
        assert_eq!(members.leaf().kind, AttrType::String);
        assert!(group.resolve(&AttrPath::parse("members.value").unwrap()).unwrap().leaf().required);
        let groups = user.resolve(&AttrPath::parse("groups").unwrap()).unwrap();
        assert_eq!(groups.attr.mutability, Mutability::ReadOnly);
        assert!(all_schemas().all(|s| s.attribute("id").is_none() && s.attribute("meta").is_none()));
        for s in all_schemas() {
            assert!(!s.attributes.is_empty());
        }
    }

    #[test]
    fn kinds_by_exact_name() {
        for kind in [ResourceKind::User, ResourceKind::Group] {
            assert_eq!(ResourceKind::from_name(kind.name()), Some(kind));
        }
        for other in ["user", "GROUP", "Users", "", " User"] {
            assert_eq!(ResourceKind::from_name(other), None, "{other}");
        }
    }
}
