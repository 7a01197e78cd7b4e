"""The line for SCADA, MES, HMIs and PLCs: each cell as an OPC 30050 (PackML) object on an OPC UA
server (``cellctl opcua``; ``--opcua PORT`` on ``cellctl run`` and ``cellctl cell run``).

``tags`` keeps a cell's PackML tags from what it shows to the outside; ``space`` lays them out in the
official PackML NodeSet (``nodeset/``, the OPC Foundation's, MIT licence) on an asyncua server;
``access`` says who may read and who may command; ``serve`` runs the server as a process of its own.
"""
