-- The reference claiming 10 jobs per poll (the issue's "about 4,400 when
-- claiming 10 per poll"): one claim, then an acknowledgement and a result per
-- job, each its own commit. One pgbench transaction is 10 lifecycles. See run.sh.
with claimed as (update ref_job set status = 'Dispatched', nonce = gen_random_uuid()::text, updated_at = now() where id in (select id from ref_job where status = 'Queued' order by seq limit 10 for update skip locked) returning id, nonce) select array_agg(id order by id) as ids, array_agg(nonce order by id) as nonces from claimed \gset
update ref_job set status = 'InProgress', updated_at = now() where id = (:ids::bigint[])[1] and nonce = (:nonces::text[])[1];
update ref_job set status = 'InProgress', updated_at = now() where id = (:ids::bigint[])[2] and nonce = (:nonces::text[])[2];
update ref_job set status = 'InProgress', updated_at = now() where id = (:ids::bigint[])[3] and nonce = (:nonces::text[])[3];
update ref_job set status = 'InProgress', updated_at = now() where id = (:ids::bigint[])[4] and nonce = (:nonces::text[])[4];
update ref_job set status = 'InProgress', updated_at = now() where id = (:ids::bigint[])[5] and nonce = (:nonces::text[])[5];
update ref_job set status = 'InProgress', updated_at = now() where id = (:ids::bigint[])[6] and nonce = (:nonces::text[])[6];
update ref_job set status = 'InProgress', updated_at = now() where id = (:ids::bigint[])[7] and nonce = (:nonces::text[])[7];
update ref_job set status = 'InProgress', updated_at = now() where id = (:ids::bigint[])[8] and nonce = (:nonces::text[])[8];
update ref_job set status = 'InProgress', updated_at = now() where id = (:ids::bigint[])[9] and nonce = (:nonces::text[])[9];
update ref_job set status = 'InProgress', updated_at = now() where id = (:ids::bigint[])[10] and nonce = (:nonces::text[])[10];
update ref_job set status = 'Succeeded', updated_at = now() where id = (:ids::bigint[])[1] and status = 'InProgress';
update ref_job set status = 'Succeeded', updated_at = now() where id = (:ids::bigint[])[2] and status = 'InProgress';
update ref_job set status = 'Succeeded', updated_at = now() where id = (:ids::bigint[])[3] and status = 'InProgress';
update ref_job set status = 'Succeeded', updated_at = now() where id = (:ids::bigint[])[4] and status = 'InProgress';
update ref_job set status = 'Succeeded', updated_at = now() where id = (:ids::bigint[])[5] and status = 'InProgress';
update ref_job set status = 'Succeeded', updated_at = now() where id = (:ids::bigint[])[6] and status = 'InProgress';
update ref_job set status = 'Succeeded', updated_at = now() where id = (:ids::bigint[])[7] and status = 'InProgress';
update ref_job set status = 'Succeeded', updated_at = now() where id = (:ids::bigint[])[8] and status = 'InProgress';
update ref_job set status = 'Succeeded', updated_at = now() where id = (:ids::bigint[])[9] and status = 'InProgress';
update ref_job set status = 'Succeeded', updated_at = now() where id = (:ids::bigint[])[10] and status = 'InProgress';
