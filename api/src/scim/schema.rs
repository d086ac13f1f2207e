//! The SCIM schemas Registrar serves (RFC 7643): the User (core and enterprise
//! extension) and Group attributes, as one table that drives the `/Schemas` answer, the
//! checks of what a client writes, and which attributes a filter may test.

use serde_json::{json, Value};

pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const SERVICE_PROVIDER_CONFIG: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
pub const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
pub const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Reference,
    Complex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    Immutable,
}

/// One attribute of a schema.
#[derive(Debug)]
pub struct Attr {
    pub name: &'static str,
    pub kind: Kind,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub unique: bool,
    pub canonical: &'static [&'static str],
    pub reference_types: &'static [&'static str],
    pub sub: &'static [Attr],
    pub description: &'static str,
}

const fn string(name: &'static str, description: &'static str) -> Attr {
    Attr {
        name,
        kind: Kind::String,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        unique: false,
        canonical: &[],
        reference_types: &[],
        sub: &[],
        description,
    }
}

const fn typed(name: &'static str, canonical: &'static [&'static str]) -> Attr {
    Attr {
        canonical,
        ..string(name, "A label for the value's function.")
    }
}

const fn primary() -> Attr {
    Attr {
        kind: Kind::Boolean,
        ..string("primary", "The preferred value of the attribute.")
    }
}

const fn multi_complex(
    name: &'static str,
    description: &'static str,
    sub: &'static [Attr],
) -> Attr {
    Attr {
        kind: Kind::Complex,
        multi: true,
        sub,
        ..string(name, description)
    }
}

const NAME_SUB: &[Attr] = &[
    string("formatted", "The full name, formatted for display."),
    string("familyName", "The family (last) name."),
    string("givenName", "The given (first) name."),
    string("middleName", "The middle name(s)."),
    string("honorificPrefix", "Title(s) before the name, e.g. 'Ms.'."),
    string("honorificSuffix", "Title(s) after the name, e.g. 'III'."),
];

const EMAIL_SUB: &[Attr] = &[
    Attr {
        required: true,
        ..string(
            "value",
            "An address. The primary one (or the first) is the account's email.",
        )
    },
    string("display", "A label for display."),
    typed("type", &["work", "home", "other"]),
    primary(),
];

const PHONE_SUB: &[Attr] = &[
    string("value", "A phone number."),
    string("display", "A label for display."),
    typed("type", &["work", "home", "mobile", "fax", "pager", "other"]),
    primary(),
];

const GROUP_REF_SUB: &[Attr] = &[
    Attr {
        mutability: Mutability::ReadOnly,
        ..string("value", "The group's id.")
    },
    Attr {
        kind: Kind::Reference,
        mutability: Mutability::ReadOnly,
        reference_types: &["Group"],
        ..string("$ref", "The group's URI.")
    },
    Attr {
        mutability: Mutability::ReadOnly,
        ..string("display", "The group's name.")
    },
];

/// The core User schema's attributes (besides `id`, `externalId` and `meta`).
pub const USER_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        unique: true,
        ..string(
            "userName",
            "Unique among live accounts, case-insensitive; an account created another way is named by its email.",
        )
    },
    Attr {
        kind: Kind::Complex,
        sub: NAME_SUB,
        ..string("name", "The components of the user's name.")
    },
    string("displayName", "The name to display."),
    string("nickName", "A casual name."),
    Attr {
        kind: Kind::Reference,
        reference_types: &["external"],
        ..string("profileUrl", "A URI of the user's online profile.")
    },
    string("title", "The user's title (Registrar's occupation)."),
    string("userType", "The relationship to the organisation, e.g. 'Employee'."),
    string("preferredLanguage", "Preferred written or spoken language."),
    string("locale", "Default location for formatting."),
    string("timezone", "Time zone, in IANA form."),
    // Every account is active or not: declared required so it is never removed (a
    // creation without it starts active).
    Attr {
        kind: Kind::Boolean,
        required: true,
        ..string(
            "active",
            "false: the account cannot sign in and its sessions end at once; absent on creation: true.",
        )
    },
    // Every account has an address: required unless the userName is one (the check of
    // what is written says so); declared required so a client always sends one.
    Attr {
        required: true,
        ..multi_complex(
            "emails",
            "Email addresses; the primary one (or the first) is the account's email.",
            EMAIL_SUB,
        )
    },
    multi_complex("phoneNumbers", "Phone numbers.", PHONE_SUB),
    Attr {
        mutability: Mutability::ReadOnly,
        ..multi_complex(
            "groups",
            "The groups (Registrar's roles) the user is in; change them through the Group.",
            GROUP_REF_SUB,
        )
    },
];

const MANAGER_SUB: &[Attr] = &[
    string("value", "The manager's id."),
    Attr {
        kind: Kind::Reference,
        reference_types: &["User"],
        ..string("$ref", "The manager's URI.")
    },
    Attr {
        mutability: Mutability::ReadOnly,
        ..string("displayName", "The manager's name.")
    },
];

/// The enterprise extension's attributes.
pub const ENTERPRISE_ATTRS: &[Attr] = &[
    string(
        "employeeNumber",
        "The organisation's identifier of the user.",
    ),
    string("costCenter", "A cost center."),
    string("organization", "An organisation."),
    string("division", "A division."),
    string("department", "A department."),
    Attr {
        kind: Kind::Complex,
        sub: MANAGER_SUB,
        ..string("manager", "The user's manager.")
    },
];

const MEMBER_SUB: &[Attr] = &[
    Attr {
        mutability: Mutability::Immutable,
        ..string("value", "The member's id.")
    },
    Attr {
        kind: Kind::Reference,
        mutability: Mutability::Immutable,
        reference_types: &["User"],
        ..string("$ref", "The member's URI.")
    },
    Attr {
        mutability: Mutability::ReadOnly,
        ..string("display", "The member's userName.")
    },
];

pub const GROUP_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        mutability: Mutability::ReadOnly,
        unique: true,
        ..string("displayName", "The role: admin or moderator.")
    },
    multi_complex(
        "members",
        "The users who hold the role (up to SCIM_GROUP_MEMBERS_MAX are listed).",
        MEMBER_SUB,
    ),
];

/// Finds an attribute by name, without regard to case.
pub fn find<'a>(attrs: &'a [Attr], name: &str) -> Option<&'a Attr> {
    attrs.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

fn attribute_json(a: &Attr) -> Value {
    let kind = match a.kind {
        Kind::String => "string",
        Kind::Boolean => "boolean",
        Kind::Reference => "reference",
        Kind::Complex => "complex",
    };
    let mutability = match a.mutability {
        Mutability::ReadOnly => "readOnly",
        Mutability::ReadWrite => "readWrite",
        Mutability::Immutable => "immutable",
    };
    let mut out = json!({
        "name": a.name,
        "type": kind,
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": mutability,
        "returned": "default",
        "uniqueness": if a.unique { "server" } else { "none" },
    });
    if !a.canonical.is_empty() {
        out["canonicalValues"] = json!(a.canonical);
    }
    if a.kind == Kind::Reference {
        out["referenceTypes"] = json!(a.reference_types);
    }
    if a.kind == Kind::Complex {
        out["subAttributes"] = Value::Array(a.sub.iter().map(attribute_json).collect());
    }
    out
}

fn schema_json(base: &str, id: &str, name: &str, description: &str, attrs: &[Attr]) -> Value {
    json!({
        "schemas": [SCHEMA],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attrs.iter().map(attribute_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")},
    })
}

/// Every schema, as `/Schemas` serves them.
pub fn schemas(base: &str) -> Vec<Value> {
    vec![
        schema_json(base, USER, "User", "A Registrar account.", USER_ATTRS),
        schema_json(
            base,
            ENTERPRISE,
            "EnterpriseUser",
            "Enterprise attributes of an account.",
            ENTERPRISE_ATTRS,
        ),
        schema_json(
            base,
            GROUP,
            "Group",
            "A Registrar role with elevated rights.",
            GROUP_ATTRS,
        ),
    ]
}

/// Every resource type, as `/ResourceTypes` serves them.
pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": [RESOURCE_TYPE],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "A Registrar account",
            "schema": USER,
            "schemaExtensions": [{"schema": ENTERPRISE, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
        }),
        json!({
            "schemas": [RESOURCE_TYPE],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "A Registrar role (admin, moderator); membership is the user's role",
            "schema": GROUP,
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")},
        }),
    ]
}

/// `/ServiceProviderConfig`.
pub fn service_provider_config(base: &str, max_results: usize) -> Value {
    json!({
        "schemas": [SERVICE_PROVIDER_CONFIG],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A SCIM token an admin issued (POST /api/v1/admin/scim/tokens or `api scim-token create`).",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}
