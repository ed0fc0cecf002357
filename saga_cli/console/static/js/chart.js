// Small charts drawn on a canvas (nothing from the API is ever turned into markup).

function sized(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return { ctx, width, height };
}

function axis(ctx, width, height, top, label, left) {
  ctx.strokeStyle = "#d5d9e0";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(left, height - 18.5);
  ctx.lineTo(width, height - 18.5);
  ctx.stroke();
  ctx.fillStyle = "#6b7280";
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "left";
  ctx.fillText(`${top} ${label}`, left, 11);
}

// One bar per value, oldest on the left.
export function bars(canvas, values, { label, leftText, rightText }) {
  const { ctx, width, height } = sized(canvas);
  const top = Math.max(1, ...values);
  const left = 4;
  const plotH = height - 36;
  axis(ctx, width, height, top, label, left);
  const step = (width - left) / Math.max(1, values.length);
  ctx.fillStyle = "#3b82f6";
  values.forEach((v, i) => {
    const h = (v / top) * plotH;
    ctx.fillRect(left + i * step + 1, height - 19 - h, Math.max(1, step - 2), h);
  });
  ctx.fillStyle = "#6b7280";
  ctx.textAlign = "left";
  ctx.fillText(leftText, left, height - 4);
  ctx.textAlign = "right";
  ctx.fillText(rightText, width, height - 4);
}

// A line over the samples, oldest on the left.
export function line(canvas, values, { label, leftText, rightText }) {
  const { ctx, width, height } = sized(canvas);
  const top = Math.max(1, ...values);
  const left = 4;
  const plotH = height - 36;
  axis(ctx, width, height, top, label, left);
  if (values.length > 1) {
    const step = (width - left) / (values.length - 1);
    ctx.strokeStyle = "#f59e0b";
    ctx.lineWidth = 2;
    ctx.beginPath();
    values.forEach((v, i) => {
      const x = left + i * step;
      const y = height - 19 - (v / top) * plotH;
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
  ctx.fillStyle = "#6b7280";
  ctx.textAlign = "left";
  ctx.fillText(leftText, left, height - 4);
  ctx.textAlign = "right";
  ctx.fillText(rightText, width, height - 4);
}
