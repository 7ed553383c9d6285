"""Short, complete scripts that use MIST from Python (run by the test suite at tiny sizes)."""
