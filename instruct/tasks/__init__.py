"""Task generators, one class per module; a task mix (conf/tasks/*.yaml) instantiates them."""

from instruct.tasks.base import Task, TaskContext

__all__ = ["Task", "TaskContext"]
