//! `X-Amz-Target: CodePipeline_20150709.<Operation>` → [`Operation`].
//!
//! One variant per operation of the service model; a test checks the list
//! against the embedded model so an SDK update cannot silently add one.

pub const TARGET_PREFIX: &str = "CodePipeline_20150709.";

macro_rules! operations {
    ($($op:ident),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation { $($op,)* }

        impl Operation {
            pub const ALL: &'static [Operation] = &[$(Operation::$op,)*];

            /// The operation's name in the service model and on the wire.
            pub fn name(self) -> &'static str {
                match self { $(Operation::$op => stringify!($op),)* }
            }

            pub fn from_name(name: &str) -> Option<Operation> {
                match name { $(stringify!($op) => Some(Operation::$op),)* _ => None }
            }
        }
    };
}

operations! {
    AcknowledgeJob,
    AcknowledgeThirdPartyJob,
    CreateCustomActionType,
    CreatePipeline,
    DeleteCustomActionType,
    DeletePipeline,
    DeleteWebhook,
    DeregisterWebhookWithThirdParty,
    DisableStageTransition,
    EnableStageTransition,
    GetActionType,
    GetJobDetails,
    GetPipeline,
    GetPipelineExecution,
    GetPipelineState,
    GetThirdPartyJobDetails,
    ListActionExecutions,
    ListActionTypes,
    ListDeployActionExecutionTargets,
    ListPipelineExecutions,
    ListPipelines,
    ListRuleExecutions,
    ListRuleTypes,
    ListTagsForResource,
    ListWebhooks,
    OverrideStageCondition,
    PollForJobs,
    PollForThirdPartyJobs,
    PutActionRevision,
    PutApprovalResult,
    PutJobFailureResult,
    PutJobSuccessResult,
    PutThirdPartyJobFailureResult,
    PutThirdPartyJobSuccessResult,
    PutWebhook,
    RegisterWebhookWithThirdParty,
    RetryStageExecution,
    RollbackStage,
    StartPipelineExecution,
    StopPipelineExecution,
    TagResource,
    UntagResource,
    UpdateActionType,
    UpdatePipeline,
}

impl Operation {
    /// Parses the whole header value; anything but this service's prefix and
    /// a known operation is `None` (the caller answers UnknownOperationException).
    pub fn from_target(target: &str) -> Option<Operation> {
        Operation::from_name(target.strip_prefix(TARGET_PREFIX)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_operation_has_a_variant_and_no_more() {
        let mut model: Vec<&str> = crate::protocol::model::Model::get().operation_names().collect();
        model.sort_unstable();
        let mut ours: Vec<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
        ours.sort_unstable();
        assert_eq!(model, ours);
        assert_eq!(ours.len(), 44);
    }

    #[test]
    fn targets_parse_only_with_the_service_prefix() {
        assert_eq!(Operation::from_target("CodePipeline_20150709.ListPipelines"), Some(Operation::ListPipelines));
        assert_eq!(Operation::from_target("ListPipelines"), None);
        assert_eq!(Operation::from_target("CodePipeline_20150709.ListPipeline"), None);
        assert_eq!(Operation::from_target("DynamoDB_20120810.ListTables"), None);
    }
}
