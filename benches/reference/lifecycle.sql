update ref_job set status = 'Dispatched', nonce = gen_random_uuid()::text, updated_at = now() where id = (select id from ref_job where status = 'Queued' order by seq limit 1 for update skip locked) returning id, nonce \gset
update ref_job set status = 'InProgress', updated_at = now() where id = :id and nonce = :nonce;
update ref_job set status = 'Succeeded', updated_at = now() where id = :id and status = 'InProgress';
