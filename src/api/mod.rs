//! The API: `Campaign` and `Experiment` custom resources in group
//! `archlab.dev`, version `v1alpha1`. `archlab run` reads the very manifest a user would
//! `kubectl apply`.

pub mod bounds;
pub mod campaign;
pub mod conditions;
pub mod crds;
pub mod experiment;
pub mod limits;
pub mod manifest;
pub mod names;
pub mod policy;
pub use ::trainer::schema_bounds;
pub mod trainer;

pub use campaign::{Campaign, CampaignSpec, CampaignStatus};
pub use manifest::{ManifestError, parse_campaign};
