//! Random search, the control for the benchmark: every operator equally likely, no history,
//! analysis or literature. With `search.sampling.parentTopK` at least the population size the
//! parent is uniform too.

use super::evolutionary::propose_with;
use super::{AgentError, Proposal, ProposalRequest};

pub fn propose(request: &ProposalRequest<'_>) -> Result<Proposal, AgentError> {
    propose_with(request, false)
}
