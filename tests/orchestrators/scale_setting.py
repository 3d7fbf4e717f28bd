"""A module-level value that steps of other modules read (`scale_setting.SCALE`): a test
sets it at run time in the process that keys them, which a step process does not see."""

SCALE = 1.0
