-- No query filters or joins on these documents: statistics on them would
-- never be used, and gathering them (sorting every sampled jsonb value) was
-- the costliest part of autovacuum's ANALYZE on the busiest tables.
alter table job alter column data set statistics 0;
alter table action_execution alter column input set statistics 0;
alter table action_execution alter column output set statistics 0;
alter table action_execution alter column revision set statistics 0;
alter table pipeline_execution alter column variables set statistics 0;
alter table pipeline_execution alter column source_overrides set statistics 0;
alter table pipeline_version alter column declaration set statistics 0;
