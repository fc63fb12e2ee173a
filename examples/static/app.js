// Lists the orders from the JSON API next to this page.
fetch("/orders")
  .then((response) => response.json())
  .then((orders) => {
    const list = document.getElementById("orders");
    for (const order of orders) {
      const item = document.createElement("li");
      item.textContent = `#${order.id}: ${order.item} (${order.cents} cents)`;
      list.appendChild(item);
    }
  });
