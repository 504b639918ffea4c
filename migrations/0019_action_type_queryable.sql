-- The name of a type's queryable configuration property ('' for none), kept
-- beside its definition: PollForJobs checks a queryParam against it on every
-- poll, and read the whole definition (and expanded its properties) to do
-- so (benches/README.md, session 6).
alter table action_type add column queryable text not null generated always as (
    coalesce(jsonb_path_query_first(definition, '$.actionConfigurationProperties[*] ? (@.queryable == true).name') #>> '{}', '')
) stored;
