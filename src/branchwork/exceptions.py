"""Every error branchwork raises, in one tree so callers can catch at the right depth.

    BranchworkError
    ├── ConfigurationError          bad settings, parameters or store configuration
    ├── StoreUnavailableError       the metadata store stayed unreachable or locked too long
    ├── StepInvocationError         a step called with missing/unknown/unusable arguments
    ├── PipelineDefinitionError     a pipeline body that cannot be compiled or returns non-steps
    │   └── DynamicValueUsedError   a `dynamic=False` pipeline used a step output as a value
    ├── OrchestratorError           an orchestrator refused or failed to run a pipeline
    │   └── RunAlreadyStartedError  a loop asked to start a run another loop has started
    ├── ArtifactError               an output could not be stored, or an artifact not loaded
    │   └── MissingArtifactError    an artifact's files are gone from the artifact store
    ├── RunStopped                  a run was stopped on request before it finished
    ├── RunPaused                   a run waits for an answer (`branchwork.wait`)
    ├── InvalidAnswerError          an answer that its question's schema refuses, or too late
    ├── PipelineHookError           a pipeline's on_start hook raised: the run failed first
    ├── CommandFailedError          a command step's command exited non-zero or did not start
    ├── StepFailedError             one invocation failed (raised by its future)
    │   ├── StepNotRunError         an invocation never ran because another one failed
    │   └── ReplayDivergenceError   a resumed run's invocation no longer matches its record
    ├── WaitTimeoutError            a question got no answer in time and has no default
    └── PipelineRunFailedError      a whole run failed; `__cause__` is the original exception

Messages name the pipeline, the invocation id or the parameter, and say what to do.
"""

from __future__ import annotations


class BranchworkError(Exception):
    """Base of every branchwork error."""


class ConfigurationError(BranchworkError, ValueError):
    """Invalid settings, parameters or store configuration."""


class StoreUnavailableError(BranchworkError):
    """The metadata store stayed unreachable (or locked) for longer than the retry window."""


class StepInvocationError(BranchworkError, TypeError):
    """A step was called with arguments it cannot run with."""


class PipelineDefinitionError(BranchworkError):
    """A pipeline function cannot be compiled or returned something that is not a step output."""


class DynamicValueUsedError(PipelineDefinitionError):
    """A pipeline forced to be static used a step output as a value."""


class OrchestratorError(BranchworkError):
    """An orchestrator refused or failed to run a pipeline."""


class RunAlreadyStartedError(OrchestratorError):
    """A loop was asked to start a run another loop has started or ended (a job launched
    twice, say): the run is left to that loop, as it is."""


class ArtifactError(BranchworkError):
    """An artifact could not be saved or loaded."""


class MissingArtifactError(ArtifactError):
    """An artifact's files are gone from the artifact store (deleted, or the store moved);
    `uri` is the artifact's."""

    def __init__(self, message: str, uri: str = "") -> None:
        super().__init__(message)
        self.uri = uri


class RunStopped(BranchworkError):
    """A run was stopped on request (Ctrl-C in the process that submitted it elsewhere,
    `branchwork runs stop`) before it finished."""


class RunPaused(BranchworkError):
    """A run paused at `branchwork.wait(...)`: it waits for an answer (`branchwork runs answer`,
    `Client().answer_run`). Nothing is lost; the run goes on from there once answered."""

    def __init__(
        self, message: str, run_id: str, wait_id: str, question: str, refused: str | None = None
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.wait_id = wait_id
        self.question = question
        self.refused = refused  # why the pipeline refused the answer it was given, if it did


class ChildRunPaused(RunPaused):
    """A child run (a pipeline a running pipeline called) paused at a question: its invocation
    in the parent waits with it, and the parent pauses once its other steps finish (see
    `pipelines.nesting`)."""


class InvalidAnswerError(BranchworkError, ValueError):
    """An answer its question's schema refuses, to a run that is not paused, or given after
    the question timed out; nothing was recorded."""


class WaitTimeoutError(BranchworkError):
    """A question got no answer within its timeout and has no default: the run failed."""


class PipelineHookError(BranchworkError):
    """A pipeline's `on_start` hook raised: the run fails before any step; `__cause__` is
    the hook's exception."""


class CommandFailedError(BranchworkError):
    """A command step's command exited with a non-zero code (`returncode`), or could not be
    started (`returncode` None). Its arguments are its message and code, so that it is
    rebuilt alike in another process (`metadata.error_records`)."""

    def __init__(self, message: str, returncode: int | None = None) -> None:
        super().__init__(message, returncode)
        self.returncode = returncode

    def __str__(self) -> str:
        return str(self.args[0])


class StepFailedError(BranchworkError):
    """An invocation failed; raised wherever its output is needed. Its arguments are its
    message and invocation id, so that it unpickles, and is rebuilt in another process
    (`metadata.error_records`), as itself."""

    def __init__(self, message: str, invocation_id: str) -> None:
        super().__init__(message, invocation_id)
        self.invocation_id = invocation_id

    def __str__(self) -> str:
        return str(self.args[0])


class StepNotRunError(StepFailedError):
    """An invocation was never run because another invocation failed first."""


class ReplayDivergenceError(StepFailedError):
    """On resume, an invocation id now names a different step, inputs or code."""


class PipelineRunFailedError(BranchworkError):
    """A pipeline run ended FAILED. `run_id` names the run; `__cause__` is the step's exception."""

    def __init__(self, message: str, run_id: str, invocation_id: str | None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.invocation_id = invocation_id


class PipelineRunStoppedError(PipelineRunFailedError):
    """A pipeline run ended STOPPED: it was asked to stop (Ctrl-C, `runs stop`, its parent run
    stopping). A PipelineRunFailedError, so what catches failures catches it too."""
