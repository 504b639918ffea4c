-- A pipeline deleted and created again under the same name starts over at
-- version 1 with a new definition, so (name, version) alone does not name a
-- declaration for good; (generation, version) does, and servers cache parsed
-- declarations under it.
alter table pipeline add column generation uuid not null default gen_random_uuid();
