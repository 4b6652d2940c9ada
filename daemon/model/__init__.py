"""The pure core: dataflow model, graph queries, states and protocols; no trio, no zmq."""
