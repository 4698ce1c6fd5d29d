"""What every back end and node kind shares: run records and events, errors, retry policy and run
options, the node-executor contract, flow-input checks and the attempt loop."""
