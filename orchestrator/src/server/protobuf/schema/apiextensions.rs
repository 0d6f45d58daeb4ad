//! apiextensions.k8s.io/v1 CustomResourceDefinition, whose validation schema nests itself
//! (properties of properties) and holds unions (a schema or a list of them, a schema or a
//! bool), raw JSON values and doubles.

use super::Ty::*;
use super::meta::OBJECT_META;
use super::{Field, Msg};

pub static CUSTOM_RESOURCE_DEFINITION: Msg = Msg {
    name: "CustomResourceDefinition",
    fields: &[
        f!(1 "metadata" Msg(&OBJECT_META)),
        f!(2 "spec" Msg(&CUSTOM_RESOURCE_DEFINITION_SPEC)),
        f!(3 "status" Msg(&CUSTOM_RESOURCE_DEFINITION_STATUS)),
    ],
};

pub static CUSTOM_RESOURCE_DEFINITION_SPEC: Msg = Msg {
    name: "CustomResourceDefinitionSpec",
    fields: &[
        f!(1 "group" Str),
        f!(3 "names" Msg(&CUSTOM_RESOURCE_DEFINITION_NAMES)),
        f!(4 "scope" Str),
        f!(7 "versions" [Msg(&CUSTOM_RESOURCE_DEFINITION_VERSION)]),
        f!(9 "conversion" Msg(&CUSTOM_RESOURCE_CONVERSION)),
        f!(10 "preserveUnknownFields" Bool, omitempty),
    ],
};

pub static CUSTOM_RESOURCE_DEFINITION_NAMES: Msg = Msg {
    name: "CustomResourceDefinitionNames",
    fields: &[
        f!(1 "plural" Str),
        f!(2 "singular" Str),
        f!(3 "shortNames" [Str]),
        f!(4 "kind" Str),
        f!(5 "listKind" Str),
        f!(6 "categories" [Str]),
    ],
};

pub static CUSTOM_RESOURCE_DEFINITION_VERSION: Msg = Msg {
    name: "CustomResourceDefinitionVersion",
    fields: &[
        f!(1 "name" Str),
        f!(2 "served" Bool),
        f!(3 "storage" Bool),
        f!(7 "deprecated" Bool, omitempty),
        f!(8 "deprecationWarning" Str),
        f!(4 "schema" Msg(&CUSTOM_RESOURCE_VALIDATION)),
        f!(5 "subresources" Msg(&CUSTOM_RESOURCE_SUBRESOURCES)),
        f!(6 "additionalPrinterColumns" [Msg(&CUSTOM_RESOURCE_COLUMN_DEFINITION)]),
        f!(9 "selectableFields" [Msg(&SELECTABLE_FIELD)]),
    ],
};

pub static CUSTOM_RESOURCE_VALIDATION: Msg = Msg {
    name: "CustomResourceValidation",
    fields: &[f!(1 "openAPIV3Schema" Msg(&JSON_SCHEMA_PROPS))],
};

pub static JSON_SCHEMA_PROPS: Msg = Msg {
    name: "JSONSchemaProps",
    fields: &[
        f!(1 "id" Str),
        f!(2 "$schema" Str),
        f!(3 "$ref" Str),
        f!(4 "description" Str),
        f!(5 "type" Str),
        f!(6 "format" Str),
        f!(7 "title" Str),
        f!(8 "default" Raw),
        f!(9 "maximum" Double),
        f!(10 "exclusiveMaximum" Bool, omitempty),
        f!(11 "minimum" Double),
        f!(12 "exclusiveMinimum" Bool, omitempty),
        f!(13 "maxLength" Int),
        f!(14 "minLength" Int),
        f!(15 "pattern" Str),
        f!(16 "maxItems" Int),
        f!(17 "minItems" Int),
        f!(18 "uniqueItems" Bool, omitempty),
        f!(19 "multipleOf" Double),
        f!(20 "enum" [Raw]),
        f!(21 "maxProperties" Int),
        f!(22 "minProperties" Int),
        f!(23 "required" [Str]),
        f!(24 "items" Either(&JSON_SCHEMA_PROPS_OR_ARRAY)),
        f!(25 "allOf" [Msg(&JSON_SCHEMA_PROPS)]),
        f!(26 "oneOf" [Msg(&JSON_SCHEMA_PROPS)]),
        f!(27 "anyOf" [Msg(&JSON_SCHEMA_PROPS)]),
        f!(28 "not" Msg(&JSON_SCHEMA_PROPS)),
        f!(29 "properties" Map(&Msg(&JSON_SCHEMA_PROPS))),
        f!(30 "additionalProperties" Either(&JSON_SCHEMA_PROPS_OR_BOOL)),
        f!(31 "patternProperties" Map(&Msg(&JSON_SCHEMA_PROPS))),
        f!(32 "dependencies" Map(&Either(&JSON_SCHEMA_PROPS_OR_STRING_ARRAY))),
        f!(33 "additionalItems" Either(&JSON_SCHEMA_PROPS_OR_BOOL)),
        f!(34 "definitions" Map(&Msg(&JSON_SCHEMA_PROPS))),
        f!(35 "externalDocs" Msg(&EXTERNAL_DOCUMENTATION)),
        f!(36 "example" Raw),
        f!(37 "nullable" Bool, omitempty),
        f!(38 "x-kubernetes-preserve-unknown-fields" Bool),
        f!(39 "x-kubernetes-embedded-resource" Bool, omitempty),
        f!(40 "x-kubernetes-int-or-string" Bool, omitempty),
        f!(41 "x-kubernetes-list-map-keys" [Str]),
        f!(42 "x-kubernetes-list-type" Str),
        f!(43 "x-kubernetes-map-type" Str),
        f!(44 "x-kubernetes-validations" [Msg(&VALIDATION_RULE)]),
    ],
};

pub static JSON_SCHEMA_PROPS_OR_ARRAY: Msg = Msg {
    name: "JSONSchemaPropsOrArray",
    fields: &[
        f!(2 "jsonSchemas" [Msg(&JSON_SCHEMA_PROPS)]),
        f!(1 "schema" Msg(&JSON_SCHEMA_PROPS)),
    ],
};

pub static JSON_SCHEMA_PROPS_OR_BOOL: Msg = Msg {
    name: "JSONSchemaPropsOrBool",
    fields: &[f!(2 "schema" Msg(&JSON_SCHEMA_PROPS)), f!(1 "allows" Bool)],
};

pub static JSON_SCHEMA_PROPS_OR_STRING_ARRAY: Msg = Msg {
    name: "JSONSchemaPropsOrStringArray",
    fields: &[f!(2 "property" [Str]), f!(1 "schema" Msg(&JSON_SCHEMA_PROPS))],
};

pub static EXTERNAL_DOCUMENTATION: Msg =
    Msg { name: "ExternalDocumentation", fields: &[f!(1 "description" Str), f!(2 "url" Str)] };

pub static VALIDATION_RULE: Msg = Msg {
    name: "ValidationRule",
    fields: &[
        f!(1 "rule" Str),
        f!(2 "message" Str),
        f!(3 "messageExpression" Str),
        f!(4 "reason" Str),
        f!(5 "fieldPath" Str),
        f!(6 "optionalOldSelf" Bool),
    ],
};

pub static CUSTOM_RESOURCE_SUBRESOURCES: Msg = Msg {
    name: "CustomResourceSubresources",
    fields: &[
        f!(1 "status" Msg(&CUSTOM_RESOURCE_SUBRESOURCE_STATUS)),
        f!(2 "scale" Msg(&CUSTOM_RESOURCE_SUBRESOURCE_SCALE)),
    ],
};

pub static CUSTOM_RESOURCE_SUBRESOURCE_STATUS: Msg =
    Msg { name: "CustomResourceSubresourceStatus", fields: &[] };

pub static CUSTOM_RESOURCE_SUBRESOURCE_SCALE: Msg = Msg {
    name: "CustomResourceSubresourceScale",
    fields: &[
        f!(1 "specReplicasPath" Str),
        f!(2 "statusReplicasPath" Str),
        f!(3 "labelSelectorPath" Str),
    ],
};

pub static CUSTOM_RESOURCE_COLUMN_DEFINITION: Msg = Msg {
    name: "CustomResourceColumnDefinition",
    fields: &[
        f!(1 "name" Str),
        f!(2 "type" Str),
        f!(3 "format" Str),
        f!(4 "description" Str),
        f!(5 "priority" Int, omitempty),
        f!(6 "jsonPath" Str),
    ],
};

pub static SELECTABLE_FIELD: Msg = Msg { name: "SelectableField", fields: &[f!(1 "jsonPath" Str)] };

pub static CUSTOM_RESOURCE_CONVERSION: Msg = Msg {
    name: "CustomResourceConversion",
    fields: &[f!(1 "strategy" Str), f!(2 "webhook" Msg(&WEBHOOK_CONVERSION))],
};

pub static WEBHOOK_CONVERSION: Msg = Msg {
    name: "WebhookConversion",
    fields: &[
        f!(2 "clientConfig" Msg(&WEBHOOK_CLIENT_CONFIG)),
        f!(3 "conversionReviewVersions" [Str]),
    ],
};

pub static WEBHOOK_CLIENT_CONFIG: Msg = Msg {
    name: "WebhookClientConfig",
    fields: &[f!(3 "url" Str), f!(1 "service" Msg(&SERVICE_REFERENCE)), f!(2 "caBundle" Bytes)],
};

pub static SERVICE_REFERENCE: Msg = Msg {
    name: "ServiceReference",
    fields: &[f!(1 "namespace" Str), f!(2 "name" Str), f!(3 "path" Str), f!(4 "port" Int)],
};

pub static CUSTOM_RESOURCE_DEFINITION_STATUS: Msg = Msg {
    name: "CustomResourceDefinitionStatus",
    fields: &[
        f!(1 "conditions" [Msg(&CUSTOM_RESOURCE_DEFINITION_CONDITION)]),
        f!(2 "acceptedNames" Msg(&CUSTOM_RESOURCE_DEFINITION_NAMES)),
        f!(3 "storedVersions" [Str]),
    ],
};

pub static CUSTOM_RESOURCE_DEFINITION_CONDITION: Msg = Msg {
    name: "CustomResourceDefinitionCondition",
    fields: &[
        f!(1 "type" Str),
        f!(2 "status" Str),
        f!(3 "lastTransitionTime" Time),
        f!(4 "reason" Str),
        f!(5 "message" Str),
    ],
};
