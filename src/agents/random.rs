//! Random search, the control for the benchmark: the evolutionary Researcher's eleven operators,
//! literature grafts included (from the entries the engine retrieves for every proposal), each
//! equally likely — no weighting by history, by the parent's analysis or by the entries' tags.
//! With `search.sampling.parentTopK` at least the population size the parent is uniform too.

use super::evolutionary::propose_with;
use super::{AgentError, Proposal, ProposalRequest};

pub fn propose(request: &ProposalRequest<'_>) -> Result<Proposal, AgentError> {
    propose_with(request, false)
}
