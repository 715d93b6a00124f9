//! Custom resource validation: structural schema checks, defaulting, pruning and
//! `x-kubernetes-validations` CEL rules (evaluated with `kube-cel`).
//!
//! The order follows the apiextensions server: decoding prunes unknown fields and applies defaults
//! ([`CrdSchema::prepare`]); validation runs the OpenAPI checks and then, unless a type, required or
//! enum error makes them meaningless, the CEL rules ([`CrdSchema::validate`]).

pub mod embedded;
pub mod fields;
pub mod formats;
pub mod invariants;
pub mod prune;
pub mod rules;
pub mod sites;
pub mod structural;

use crate::error::Cause;
use kube_cel::RootContext;
use serde_json::Value;
use std::sync::Arc;

/// Identifies the CRD version a schema belongs to (CEL's `apiVersion`, `apiGroup`, `kind`).
#[derive(Debug, Clone, Default)]
pub struct SchemaContext {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// A CRD version's `openAPIV3Schema`, compiled once when the CRD is stored. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CrdSchema {
    schema: Arc<Value>,
    context: SchemaContext,
    root: RootContext,
    sites: Arc<sites::RuleSites>,
    rules: Arc<rules::RuleIndex>,
    patterns: Arc<structural::Patterns>,
}

impl CrdSchema {
    /// Compiles the schema and its CEL rules; a rule that does not compile is a cause naming it, as
    /// is a schema that is not structural or has an invalid `pattern`.
    ///
    /// Cause fields are relative to the CRD version's schema (`openAPIV3Schema.properties[spec]...`):
    /// prefix them with `spec.versions[i].schema.` when reporting an invalid CRD.
    pub fn compile(schema: &Value, context: SchemaContext) -> Result<Self, Vec<Cause>> {
        let mut causes = Vec::new();
        invariants::check(schema, "openAPIV3Schema", &mut causes);
        let mut patterns = structural::Patterns::new();
        let mut bad_patterns = Vec::new();
        structural::compile_patterns(schema, "openAPIV3Schema", &mut patterns, &mut bad_patterns);
        for (field, pattern, error) in bad_patterns {
            let detail = format!("must be a valid regular expression, but isn't: {error}");
            causes.push(fields::invalid(&field, &Value::String(pattern), &detail));
        }
        let mut index = rules::RuleIndex::new();
        rules::index_rules(schema, "openAPIV3Schema", &mut index, &mut causes);
        if !causes.is_empty() {
            return Err(causes);
        }
        Ok(Self {
            schema: Arc::new(schema.clone()),
            root: rules::root_context(&context.group, &context.version, &context.kind),
            context,
            sites: Arc::new(sites::RuleSites::compile(&rules::optional_old_self(schema))),
            rules: Arc::new(index),
            patterns: Arc::new(patterns),
        })
    }

    /// The group, version and kind this schema validates.
    pub fn context(&self) -> &SchemaContext {
        &self.context
    }

    /// Prunes fields the schema does not know and applies defaults. Returns the dotted paths pruned
    /// (a 400 under `fieldValidation=Strict`, a warning otherwise).
    pub fn prepare(&self, object: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        prune::prune(&self.schema, object, "", true, &mut pruned);
        prune::apply_defaults(&self.schema, object, true);
        pruned.sort();
        pruned
    }

    /// Validates types, formats, enums, bounds, required fields, list-type uniqueness and CEL rules
    /// (with `oldSelf` from `old` on updates). Returns one cause per failing field or rule.
    ///
    /// On update, values unchanged from `old` are not held to the schema again (the server's validation
    /// ratcheting); transition rules always run. Call it on the prepared (pruned, defaulted) object.
    pub fn validate(&self, object: &Value, old: Option<&Value>) -> Vec<Cause> {
        let mut causes = Vec::new();
        structural::check(&self.schema, object, old, "", &self.patterns, &mut causes);
        embedded::check(&self.schema, object, "", &mut causes);
        structural::check_list_types(&self.schema, object, "", &mut causes);
        if causes.iter().any(rules::is_blocking) {
            causes.push(rules::blocking_error());
            return causes;
        }
        causes.extend(rules::evaluate(&self.schema, &self.sites, &self.rules, &self.root, object, old));
        causes
    }
}

#[cfg(test)]
mod tests;
