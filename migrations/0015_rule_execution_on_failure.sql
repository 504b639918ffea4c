-- onFailure conditions are evaluated too.
alter table rule_execution drop constraint rule_execution_condition_type_check;
alter table rule_execution add constraint rule_execution_condition_type_check
    check (condition_type in ('BEFORE_ENTRY', 'ON_SUCCESS', 'ON_FAILURE'));
