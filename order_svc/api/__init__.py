"""The checkout HTTP API of the order service.

server     the order service's background part: settings checked, the port bound, then
           served in process (serving) or by worker processes (workers)
workers    SAGA_HTTP_WORKERS > 0: API processes sharing the bound socket
           (`python -m order_svc.api.workers`, started by `server`)
serving    one API process: uvicorn, the connection pool, the placers, the in-flight count
app        the Starlette app: POST /orders, GET /orders/{id}, health, metrics, OpenAPI
admission  admission control (token bucket, in-flight cap); adaptive: the adaptive limit
placer     placements batched into one transaction
openapi    the OpenAPI 3.1 document; limits: what the API accepts (shared by app, openapi)

Imports run one way (server -> workers -> serving -> app -> openapi -> limits); placing
an order itself is `order_svc.placement`, shared with `saga order place`.
"""
