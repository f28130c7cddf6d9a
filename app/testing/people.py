"""Users with tokens, made the way a client (or an operator) makes them, for tests to act as."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PASSWORD = "correct-horse-battery"


def bearer(token: str) -> dict[str, str]:
    """Headers carrying `token` as a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def _ok(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    return response.get_json()


def register(client, username: str, password: str = DEFAULT_PASSWORD, email: str | None = None) -> dict:
    """POST /users and return the created User (asserts 201)."""
    body = {"username": username, "email": email or f"{username}@example.com", "password": password}
    return _ok(client.post("/users", json=body), 201)


def login(client, username: str, password: str = DEFAULT_PASSWORD, **kwargs) -> str:
    """POST /auth/login and return the access token (asserts 200); kwargs go to client.post."""
    response = client.post("/auth/login", json={"username": username, "password": password}, **kwargs)
    return _ok(response, 200)["access_token"]


def make_admin(app, username: str = "admin", password: str = DEFAULT_PASSWORD, email: str | None = None) -> dict:
    """Create (or promote) an admin as `credit-system create-admin` does; returns {id, username, email}."""
    user, _created = app.container.user_service().ensure_admin(username, email or f"{username}@example.com", password)
    return {"id": user.id, "username": user.username, "email": user.email}


@dataclass(frozen=True)
class Person:
    """A user of the test's app, logged in: `headers` authenticate a request as them."""

    id: str
    username: str
    email: str
    password: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


class People:
    """`admin`, `alice` and `bob`, logged in, wallets at zero; `add` and `add_admin` make more
    (reachable as attributes too: `people.add("carol")`, then `people.carol`), `fund` deposits."""

    def __init__(self, app, client) -> None:
        self.app, self.client = app, client
        self._named: dict[str, Person] = {}
        self.admin = self.add_admin("admin")
        self.alice = self.add("alice")
        self.bob = self.add("bob")

    def add(self, username: str, password: str = DEFAULT_PASSWORD, email: str | None = None) -> Person:
        """A user who signed up through POST /users and logged in."""
        user = register(self.client, username, password, email)
        return self._logged_in(user, password)

    def add_admin(self, username: str, password: str = DEFAULT_PASSWORD, email: str | None = None) -> Person:
        """An admin made as `credit-system create-admin` makes one, logged in."""
        admin = make_admin(self.app, username, password, email)
        return self._logged_in({**admin, "role": "admin"}, password)

    def fund(self, person: Person, amount: int, **fields) -> dict:
        """Deposit `amount` into their wallet as the admin; the Transaction (asserts 201)."""
        body = {"user_id": person.id, "amount": amount, **fields}
        return _ok(self.client.post("/wallet/deposit", json=body, headers=self.admin.headers), 201)

    def __getattr__(self, name: str) -> Person:
        try:
            return self.__dict__["_named"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, username: str) -> Person:
        return self._named[username]

    def _logged_in(self, user: dict, password: str) -> Person:
        token = login(self.client, user["username"], password)
        person = Person(user["id"], user["username"], user["email"], password, user["role"], token)
        self._named[person.username] = person
        return person
