//! Both verdicts of every registered claim, on the shared fake context (claims/fake.rs): a case
//! that passes and one that fails just past the threshold (on each side where the threshold is
//! a boundary the claim includes), by catalogue section. Each claim is run by its registered
//! name through `fake::both`, which claims/mod.rs's test looks for.

mod deep;
mod generative;
mod sequence;
mod toolbox;
mod transformers;
