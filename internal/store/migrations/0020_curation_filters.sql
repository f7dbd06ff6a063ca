-- Curation: indexes for the task list's two filters that no index served.
-- A list walks a project's tasks by ID until it has a page; with gold=true
-- it walked every task without a gold output on the way (nine in ten in a
-- typical set), and with invalid=true it read every output of every task
-- it walked. Gold tasks now have an index of their own, in the list's
-- order, and the invalid outputs one by task, which stays small.
CREATE INDEX curation_tasks_gold ON curation_tasks (project_id, id) WHERE gold_output_id IS NOT NULL;
CREATE INDEX curation_outputs_invalid ON curation_outputs (task_id) WHERE valid = 0;
