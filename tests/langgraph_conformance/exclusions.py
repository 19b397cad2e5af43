"""Tests of LangGraph's suite that do not pass with their nodes on Lattice, each with its reason.

Keys are ``test_file::test_name`` (every parametrization) or ``test_file::test_name[params]``. Two kinds:

- **by design**: the test's nodes change objects of the test's own process (a nonlocal counter, a list
  they append to, a flag, an ``Event``, a fake model's iterator, a ``RunControl`` captured in a closure)
  and the test then reads them. A remote node runs in another process on a copy: that cannot hold.
- **gap**: LangGraph does something in-process that the remote node does not (yet) do; the reason says
  what. These are the backlog; ``docs/langgraph.md`` lists both in its exclusions table.

``run.py`` fails on any test that passes plain, fails on Lattice and is not listed here.
"""

from __future__ import annotations

MUTATES = "by design: a node changes an object of the test's process ({what}) that the test then reads"
CAPTURES = ("by design: a node captures {what}, which cannot travel to a worker; refused at decoration "
            "(TaskDefinitionError) or, for an asyncio.Event the test waits on, never set in the test's process")

EXCLUDED: dict[str, str] = {
    # --- by design: side effects on the test's own objects ----------------------------------------------
    "test_large_cases::test_dynamic_interrupt": MUTATES.format(what="a nonlocal call counter"),
    "test_large_cases::test_dynamic_interrupt_subgraph": MUTATES.format(what="a nonlocal call counter"),
    "test_large_cases::test_partial_pending_checkpoint": MUTATES.format(what="a nonlocal call counter"),
    "test_large_cases::test_send_dedupe_on_resume": MUTATES.format(what="a function attribute `ticks`"),
    "test_large_cases::test_send_react_interrupt": MUTATES.format(what="a nonlocal call counter"),
    "test_large_cases::test_send_react_interrupt_control": MUTATES.format(what="a nonlocal call counter"),
    "test_large_cases::test_state_graph_packets": MUTATES.format(what="a fake chat model's response iterator"),
    "test_pregel::test_parallel_interrupts_double": MUTATES.format(what="a Counter of node calls"),
    "test_pregel::test_pending_writes_resume": MUTATES.format(what="call counters of callable objects"),
    "test_pregel::test_in_one_fan_out_state_graph_waiting_edge_multiple": MUTATES.format(what="a nonlocal counter"),
    "test_pregel::test_run_from_checkpoint_id_retains_previous_writes": MUTATES.format(
        what="a callable object's attribute, shared by two nodes"),
    "test_pregel_async::test_pending_writes_resume": MUTATES.format(what="call counters of callable objects"),
    "test_pregel_async::test_in_one_fan_out_state_graph_waiting_edge_multiple": MUTATES.format(
        what="a nonlocal counter"),
    "test_pregel_async::test_run_from_checkpoint_id_retains_previous_writes": MUTATES.format(
        what="a callable object's attribute, shared by two nodes"),
    "test_pregel_async::test_dynamic_interrupt": MUTATES.format(what="a nonlocal call counter"),
    "test_pregel_async::test_dynamic_interrupt_subgraph": MUTATES.format(what="a nonlocal call counter"),
    "test_pregel_async::test_partial_pending_checkpoint": MUTATES.format(what="a nonlocal call counter"),
    "test_pregel_async::test_send_dedupe_on_resume": MUTATES.format(what="a function attribute `ticks`"),
    "test_pregel_async::test_send_react_interrupt": MUTATES.format(what="a nonlocal call counter"),
    "test_pregel_async::test_send_react_interrupt_control": MUTATES.format(what="a nonlocal call counter"),
    "test_pregel_async::test_cancel_graph_astream": MUTATES.format(what="flags of a callable object"),
    "test_pregel_async::test_checkpoint_put_after_cancellation": MUTATES.format(what="a timeline list"),
    "test_pregel_async::test_checkpoint_put_after_cancellation_stream_anext": MUTATES.format(what="a timeline list"),
    "test_pregel_async::test_checkpoint_put_after_cancellation_stream_events_anext": MUTATES.format(
        what="a timeline list"),
    "test_pregel_async::test_max_concurrency": MUTATES.format(what="a concurrency counter of a callable object"),
    "test_pregel_async::test_max_concurrency_control": MUTATES.format(what="a concurrency counter"),
    "test_pregel_async::test_node_cancellation_on_external_cancel": MUTATES.format(what="a nonlocal flag"),
    "test_pregel_async::test_node_cancellation_on_other_node_exception": MUTATES.format(what="a nonlocal flag"),
    "test_pregel_async::test_node_not_cancelled_on_other_node_interrupted": MUTATES.format(what="a nonlocal counter"),
    "test_pregel_async::test_step_timeout_on_stream_hang": MUTATES.format(what="a nonlocal flag"),
    "test_pregel_async::test_graph_error_handler_async_runtime_info": MUTATES.format(what="a list of runtime infos"),
    "test_retry::test_error_handler_resumes_after_crash": MUTATES.format(what="a nonlocal attempt counter"),
    "test_retry::test_execution_info_identity_fields_populated_on_retry": MUTATES.format(what="a captured list"),
    "test_retry::test_graph_error_handler_can_route_with_command": MUTATES.format(what="a nonlocal attempt counter"),
    "test_retry::test_graph_error_handler_runs_after_retry_exhaustion": MUTATES.format(
        what="a nonlocal attempt counter"),
    "test_retry::test_graph_with_jitter_retry_policy": MUTATES.format(what="a nonlocal attempt counter"),
    "test_retry::test_graph_with_multiple_retry_policies": MUTATES.format(what="a nonlocal attempt counter"),
    "test_retry::test_graph_with_single_retry_policy": MUTATES.format(what="a nonlocal attempt counter"),
    "test_retry::test_runtime_execution_info_defaults_without_retry": MUTATES.format(what="a captured dict"),
    "test_retry::test_set_node_defaults_combined_retry_and_error_handler": MUTATES.format(
        what="a nonlocal attempt counter"),
    "test_retry::test_set_node_defaults_retry_policy": MUTATES.format(what="a nonlocal attempt counter"),
    "test_retry::test_set_node_defaults_retry_policy_per_node_wins": MUTATES.format(what="a nonlocal attempt counter"),
    "test_retry::test_state_graph_add_node_timeout_composes_with_retry": MUTATES.format(what="a captured list"),
    "test_runtime::test_drain_before_interrupt_before_stops_at_breakpoint": MUTATES.format(
        what="a RunControl captured in a closure (runtime.control is relayed)"),
    "test_runtime::test_drain_before_interrupt_before_stops_at_breakpoint_async": MUTATES.format(
        what="a RunControl captured in a closure (runtime.control is relayed)"),
    "test_runtime::test_drain_before_subgraph_interrupt_before_stops_at_breakpoint": MUTATES.format(
        what="a RunControl captured in a closure (runtime.control is relayed)"),
    "test_runtime::test_drain_from_subgraph_can_resume_parent": MUTATES.format(
        what="a RunControl captured in a closure (runtime.control is relayed)"),
    "test_runtime::test_drain_requested_in_terminal_step_finishes_normally": MUTATES.format(
        what="a RunControl captured in a closure (runtime.control is relayed)"),
    "test_runtime::test_drain_requested_in_terminal_step_finishes_normally_async": MUTATES.format(
        what="a RunControl captured in a closure (runtime.control is relayed)"),
    "test_runtime::test_drain_with_exit_durability_persists_resume_checkpoint": MUTATES.format(
        what="a RunControl captured in a closure (runtime.control is relayed)"),
    "test_runtime::test_run_control_request_drain_stops_future_steps": MUTATES.format(
        what="a RunControl captured in a closure (runtime.control is relayed)"),
    "test_runtime::test_run_control_request_drain_stops_future_steps_async": MUTATES.format(
        what="a RunControl captured in a closure (runtime.control is relayed)"),
    "test_runtime::test_drain_then_cancel_after_graceful_timeout": MUTATES.format(
        what="a RunControl and an asyncio.Event captured in a closure"),
    "test_runtime::test_external_drain_concurrent_sync": MUTATES.format(what="a threading.Event the test waits on"),
    "test_runtime::test_execution_info_inherited_by_subgraph": MUTATES.format(what="a captured dict"),
    "test_runtime::test_execution_info_populated_in_graph": MUTATES.format(what="a captured dict"),
    "test_runtime::test_execution_info_populated_in_graph_async": MUTATES.format(what="a captured dict"),
    "test_runtime::test_foreign_object_in_runtime_slot_is_coerced": MUTATES.format(what="a captured dict"),
    "test_runtime::test_server_info_from_configurable": MUTATES.format(what="a captured dict"),
    "test_runtime::test_server_info_none_without_configurable": MUTATES.format(what="a captured dict"),
    "test_runtime::test_server_info_user_from_auth_user": MUTATES.format(
        what="a captured dict; its proxy user object cannot be loaded, so it stays on the client"),
    "test_runtime::test_cancel_ainvoke_with_async_node": CAPTURES.format(what="an asyncio.Event"),
    "test_interruption::test_invalid_resume_lets_other_answered_tasks_finish": MUTATES.format(
        what="a list of sent emails"),
    "test_pregel_async::test_stream_subgraphs_during_execution": (
        "by design: asserts the second event (outer_1, which sleeps 0.2 s) comes 0.2-0.4 s after the first "
        "(inner_1, a subgraph's node started with it), each time rounded to 0.1 s before the subtraction, so "
        "a gap of 0.18 s fails by rounding alone in 20 % of runs (0.19 s: 10 %). Timed at load 9-17: on "
        "Lattice the gap was 0.18-0.26 s (8 of 8 passed in the suite, the last 2 in a full run); plain "
        "LangGraph's was 0.18-0.23 s (20 runs of the same graph, median 0.205 s; 0.0-0.21 s in 8 runs while "
        "a conformance run was starting). Nothing is held back (updates are LangGraph's own events; each "
        "result reaches the client 5-30 ms after the node ends on the worker, by a long poll); Lattice's "
        "~15 ms less gap is inner_1's call starting up to 14 ms after outer_1's and its run being submitted "
        "second. The 0.5 s and 1.7 s gaps seen once were not reproduced"),
    "test_pregel::test_stream_buffering_single_node": (
        "by design: asserts when custom chunks arrive (rounded to 0.1 s); each chunk crosses the head, which on "
        "a loaded machine moves one to a later bucket (re-checked at load average 8-14: the [memory] case "
        "failed in 1 of 3 runs, passed in 2)"),
    "test_pregel_async::test_stream_buffering_single_node": (
        "by design: asserts when custom chunks arrive (rounded to 0.1 s); each chunk crosses the head, which on "
        "a loaded machine moves one to a later bucket (passes when the machine is quiet)"),
    "test_retry::test_idle_timeout_resets_on_message_stream_callbacks": (
        "by design: a 0.15 s idle timeout must be met by callbacks relayed through the head; they are (it passes "
        "on a quiet machine), but a loaded machine's dispatch latency can exceed 0.15 s before the first token"),
    # --- by design: what cannot travel ----------------------------------------------------------------
    "test_runtime::test_cancel_ainvoke_with_sync_node": CAPTURES.format(what="a threading.Event"),
    "test_runtime::test_external_drain_concurrent_async": CAPTURES.format(what="a threading.Event"),
    "test_retry::test_error_handler_resumes_after_crash_multiple_nodes": CAPTURES.format(what="a threading.Lock"),
    "test_pregel::test_send_with_untracked_value": (
        "by design: a node creates an object holding a threading.Lock and returns it (into an UntrackedValue "
        "channel); a remote node's update must travel back to the graph"),
    "test_pregel::test_store_injected": ("by design: the node takes `store`; the graph's store does not "
                                         "travel (refused at decoration)"),
    "test_pregel_async::test_store_injected_async": ("by design: the node takes `store`; the graph's store does "
                                                     "not travel (refused at decoration)"),
    "test_pregel::test_interrupt_subgraph_reenter_checkpointer_true": MUTATES.format(
        what="a list of calls the subgraph's nodes append to (its checkpoints and resumes match LangGraph's)"),
    "test_pregel_async::test_interrupt_subgraph_reenter_checkpointer_true": MUTATES.format(
        what="a list of calls the subgraph's nodes append to (its checkpoints and resumes match LangGraph's)"),
    # --- gaps -------------------------------------------------------------------------------------------
}
