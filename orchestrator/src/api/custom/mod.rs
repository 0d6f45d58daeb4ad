//! CustomResourceDefinitions (apiextensions.k8s.io/v1): checking a definition, turning an
//! established one into served kinds (a registry beside the built-in table), and serving its
//! objects: structural-schema pruning, defaulting and validation, printer columns, scale paths,
//! OpenAPI, and the controller that establishes definitions and cleans up after them.

pub mod controller;
pub mod conversion;
pub mod definition;
pub mod json_path;
pub mod openapi;
pub mod registry;
pub mod structural;

use serde_json::Value;

/// The finalizer a deleted definition keeps until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// One `additionalPrinterColumns` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

/// The scale subresource's paths (`.spec.replicas` style, as the CRD gives them).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// What a served version of a CustomResourceDefinition adds to its [`ResourceKind`].
///
/// [`ResourceKind`]: super::resources::ResourceKind
#[derive(Debug, Clone, PartialEq)]
pub struct CustomKind {
    /// The definition's name (`<plural>.<group>`).
    pub definition: String,
    /// The version objects are stored as (conversion `None`: only apiVersion differs).
    pub storage_version: String,
    /// The version's `openAPIV3Schema` (`{}` when absent).
    pub schema: Value,
    /// `additionalPrinterColumns`; empty means the default Name/Age columns.
    pub columns: Vec<PrinterColumn>,
    pub scale: Option<ScalePaths>,
    pub list_kind: String,
}

impl CustomKind {
    /// The apiVersion objects carry in the store.
    pub fn storage_api_version(&self, group: &str) -> String {
        format!("{group}/{}", self.storage_version)
    }
}
